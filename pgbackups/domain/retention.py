"""Which backups of a database retention keeps, and why (docs/architecture.md, "Retention").

Heroku PG Backups semantics: periodic backups keep the newest `done` backup of
each of the last `daily` days, the Sunday backup of each of the last `weekly`
weeks and the first-Sunday backup of each of the last `monthly` months, days
counted in the schedule's time zone; manual backups keep the newest `manual`;
`error` records are kept `ERROR_RECORD_DAYS` days.

Pure planning, no I/O: the caller deletes `plan.delete` (object and record
together) and shows `plan.keep[id]` as each backup's `kept_as`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pgbackups.domain.models import BackupRecord, KeptAs, RetentionPolicy

ERROR_RECORD_DAYS = 30
SUNDAY = 6  # date.weekday()


@dataclass(frozen=True)
class RetentionPlan:
    keep: dict[str, KeptAs]  # id -> why, for every kept `done` backup
    delete: tuple[BackupRecord, ...]  # oldest first


def plan_retention(
    policy: RetentionPolicy, backups: Iterable[BackupRecord], now: datetime, tz: ZoneInfo
) -> RetentionPlan:
    """The plan for one database's backups at `now`; the same whatever their order."""
    now = _utc(now)
    today = now.astimezone(tz).date()
    # Oldest first, ties broken by id, so "newest" never depends on input order.
    history = sorted(backups, key=lambda b: (_utc(b.created_at), b.id))
    done = [b for b in history if b.status == "done"]
    keep: dict[str, KeptAs] = {}

    newest_of_day: dict[date, BackupRecord] = {}
    for backup in done:
        if backup.method == "periodic":
            newest_of_day[_local_day(backup, today, tz)] = backup  # a later one replaces it
    daily_days = {today - timedelta(days=n) for n in range(policy.daily)}
    weekly_days = set(_last_sundays(today, policy.weekly))
    monthly_days = set(_last_first_sundays(today, policy.monthly))
    for day, backup in newest_of_day.items():
        # The first reason that applies wins: daily, then weekly, then monthly.
        if day in daily_days:
            keep[backup.id] = "daily"
        elif day in weekly_days:
            keep[backup.id] = "weekly"
        elif day in monthly_days:
            keep[backup.id] = "monthly"

    manual = [b for b in done if b.method == "manual"]
    for backup in manual[max(0, len(manual) - policy.manual) :]:
        keep[backup.id] = "manual"

    # Never delete the newest done backup, whatever the policy: it may be the last
    # copy of the data. Nor one from the future (a writer's clock ahead of ours).
    protected = [b for b in done if _utc(b.created_at) > now] + done[-1:]
    for backup in protected:
        keep.setdefault(backup.id, "manual" if backup.method == "manual" else "daily")

    delete = tuple(
        b
        for b in history
        if (b.status == "done" and b.id not in keep)
        or (b.status == "error" and _error_record_expired(b, now))
    )
    return RetentionPlan(keep=keep, delete=delete)


def _utc(moment: datetime) -> datetime:
    # Stored times are UTC; a naive one read back must not be taken as local time.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _local_day(backup: BackupRecord, today: date, tz: ZoneInfo) -> date:
    # A backup from the future counts as made today.
    return min(_utc(backup.created_at).astimezone(tz).date(), today)


def _error_record_expired(backup: BackupRecord, now: datetime) -> bool:
    failed_at = _utc(backup.finished_at or backup.created_at)
    return now - failed_at >= timedelta(days=ERROR_RECORD_DAYS)


def _last_sundays(today: date, count: int) -> list[date]:
    """The last `count` Sundays, today included."""
    last = today - timedelta(days=(today.weekday() - SUNDAY) % 7)
    return [last - timedelta(weeks=n) for n in range(count)]


def _first_sunday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(SUNDAY - first.weekday()) % 7)


def _last_first_sundays(today: date, count: int) -> list[date]:
    """The first Sundays of the last `count` months, today included."""
    # A month whose first Sunday is still ahead is not counted: take the previous months.
    year, month = today.year, today.month
    sundays: list[date] = []
    while len(sundays) < count:
        sunday = _first_sunday(year, month)
        if sunday <= today:
            sundays.append(sunday)
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return sundays
