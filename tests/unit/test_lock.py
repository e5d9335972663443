"""Object Lock dates (pgbackups.domain.lock): what each write gets, and how long retention
keeps a periodic backup, checked against retention's own plan."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from pgbackups.domain.lock import BackupLock, is_protected, retention_keeps_until
from pgbackups.domain.models import BackupRecord, RetentionPolicy
from pgbackups.domain.retention import plan_retention

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")


def periodic(day: date, method: str = "periodic") -> BackupRecord:
    created = datetime.combine(day, time(1), tzinfo=PARIS).astimezone(UTC)
    record = BackupRecord.new("shop", method, created)  # type: ignore[arg-type]
    return record.model_copy(update={"status": "done", "finished_at": created})


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=PARIS).astimezone(UTC)


def test_a_write_is_locked_for_the_days_in_whole_seconds_rounded_up() -> None:
    written = datetime(2026, 11, 25, 3, 40, 12, 250_000, tzinfo=UTC)
    assert BackupLock("governance", 7).until(written) == datetime(
        2026, 12, 2, 3, 40, 13, tzinfo=UTC
    )
    assert BackupLock("compliance", 30).until(written.replace(microsecond=0)) == datetime(
        2026, 12, 25, 3, 40, 12, tzinfo=UTC
    )
    assert BackupLock("off", 7).until(written) is None


@pytest.mark.parametrize(("mode", "days"), [("on", 7), ("governance", 0), ("compliance", -1)])
def test_a_lock_setting_out_of_range_is_refused(mode: str, days: int) -> None:
    with pytest.raises(ValueError):
        BackupLock(mode, days)  # type: ignore[arg-type]


# 2026-11-01 is the first Sunday of November, 2026-11-08 the second.
@pytest.mark.parametrize(
    ("day", "policy", "until"),
    [
        (date(2026, 11, 4), RetentionPolicy(daily=7, weekly=4), date(2026, 11, 11)),
        (date(2026, 11, 8), RetentionPolicy(daily=7, weekly=4), date(2026, 12, 6)),
        (date(2026, 11, 8), RetentionPolicy(daily=7, weekly=0), date(2026, 11, 15)),
        (date(2026, 11, 8), RetentionPolicy(daily=7, weekly=4, monthly=3), date(2026, 12, 6)),
        (date(2026, 11, 1), RetentionPolicy(daily=7, weekly=4, monthly=3), date(2027, 2, 7)),
        (date(2026, 11, 1), RetentionPolicy(daily=35, weekly=1, monthly=0), date(2026, 12, 6)),
    ],
)
def test_a_periodic_backup_is_kept_until_its_longest_window_ends(
    day: date, policy: RetentionPolicy, until: date
) -> None:
    backup = periodic(day)
    assert retention_keeps_until(policy, backup, PARIS) == local_midnight(until)

    # Retention's own plan agrees: kept the second before that date, not at it (a newer
    # backup each time, so the backup is not kept as the newest one).
    for moment, kept in (
        (local_midnight(until) - timedelta(seconds=1), True),
        (local_midnight(until), False),
    ):
        newer = periodic(moment.astimezone(PARIS).date())
        plan = plan_retention(policy, [backup, newer], moment, PARIS)
        assert (backup.id in plan.keep) is kept, (moment, plan.keep)


def test_a_manual_backup_goes_by_count_not_by_date() -> None:
    assert (
        retention_keeps_until(RetentionPolicy(), periodic(date(2026, 11, 1), "manual"), PARIS)
        is None
    )


def test_a_backup_is_protected_until_its_date_or_while_held() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    backup = periodic(date(2026, 11, 20))
    assert not is_protected(backup, now)
    assert is_protected(backup.model_copy(update={"locked_until": now + timedelta(seconds=1)}), now)
    assert not is_protected(backup.model_copy(update={"locked_until": now}), now)
    assert is_protected(backup.model_copy(update={"legal_hold": True}), now)
