"""The health rules at their boundaries, and the messages a person receives."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from pgbackups.domain.health import (
    DEFAULT_LAG_LIMIT,
    DEFAULT_STALE_AFTER,
    PitrHealth,
    alert_messages,
    evaluate_health,
    health_change,
)
from pgbackups.domain.models import BackupRecord, DatabaseRecord, Schedule
from pgbackups.domain.schedule import periodic_slot
from tests.unit.test_retention import make_backup

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def database(created_at: datetime = NOW - timedelta(days=30), **schedule: object) -> DatabaseRecord:
    return DatabaseRecord(name="shop", created_at=created_at, schedule=Schedule(**schedule))


def codes(reasons: list) -> list[str]:  # type: ignore[type-arg]
    return [r.code for r in reasons]


def test_a_database_backed_up_today_is_ok() -> None:
    backups = [make_backup(NOW - timedelta(hours=11))]
    assert evaluate_health(database(), backups, None, NOW) == []


def test_the_last_good_backup_may_be_a_day_and_the_catch_up_window_old_and_no_more() -> None:
    newest = make_backup(NOW - DEFAULT_STALE_AFTER)
    assert evaluate_health(database(), [newest], None, NOW) == []
    [stale] = evaluate_health(database(), [newest], None, NOW + timedelta(seconds=1))
    assert stale.code == "backups_stale" and stale.severity == "failing"
    assert stale.since == newest.created_at + DEFAULT_STALE_AFTER
    assert "No backup has succeeded for 1 day 6 h" in stale.message


def test_a_database_registered_an_hour_ago_is_not_stale_and_one_never_backed_up_a_day_later_is() -> (
    None
):
    young = database(created_at=NOW - timedelta(hours=1))
    assert evaluate_health(young, [], None, NOW) == []
    old = database(created_at=NOW - DEFAULT_STALE_AFTER - timedelta(minutes=1))
    [stale] = evaluate_health(old, [], None, NOW)
    assert stale.code == "backups_stale"
    assert stale.message.startswith("No backup has ever succeeded, 1 day 6 h after registration")


def test_a_disabled_schedule_is_not_stale_and_a_removed_database_neither() -> None:
    old = make_backup(NOW - timedelta(days=40))
    assert evaluate_health(database(enabled=False), [old], None, NOW) == []
    removed = database().model_copy(update={"removed_at": NOW - timedelta(days=39)})
    assert evaluate_health(removed, [old], None, NOW) == []


@pytest.mark.parametrize(
    "zone", ["Europe/Paris", "America/Nuuk", "Australia/Lord_Howe", "Pacific/Chatham", "UTC"]
)
@pytest.mark.parametrize("hour", [0, 1, 2, 23])
def test_daily_backups_at_their_hour_are_never_stale_across_a_year_of_time_zone_changes(
    zone: str, hour: int
) -> None:
    """Each day's periodic backup taken at the latest its catch-up window allows: the
    database is never stale, on DST days (23- and 25-hour days) included."""
    schedule = Schedule(hour=hour, timezone=zone)
    record = DatabaseRecord(
        name="shop", created_at=datetime(2025, 12, 31, tzinfo=UTC), schedule=schedule
    )
    backups: list[BackupRecord] = []
    at = datetime(2026, 1, 1, tzinfo=UTC)
    while at < datetime(2027, 1, 1, tzinfo=UTC):
        slot = periodic_slot(schedule, at)
        if slot is not None and slot.late_by == timedelta(hours=5):  # the last catch-up hour
            backups = [make_backup(at)]
        if backups:
            assert evaluate_health(record, backups, None, at + timedelta(minutes=59)) == [], at
        at += timedelta(hours=1)


def test_a_failed_backup_fails_until_a_newer_one_succeeds() -> None:
    good = make_backup(NOW - timedelta(hours=30))
    first = make_backup(NOW - timedelta(hours=6), status="error")
    first = first.model_copy(update={"error": "pg_dump: error: connection refused\n"})
    second = make_backup(NOW - timedelta(hours=3), status="error")
    second = second.model_copy(update={"error": "pg_dump: error: password authentication failed"})
    [failed] = evaluate_health(database(), [second, good, first], None, NOW)
    assert failed.code == "backup_failed"
    assert failed.since == first.finished_at  # the incident began with the first failure
    assert (
        "The last backup failed: pg_dump: error: password authentication failed." in failed.message
    )
    fixed = make_backup(NOW - timedelta(hours=1))
    assert evaluate_health(database(), [good, first, second, fixed], None, NOW) == []


def test_continuous_backups_broken_fail_and_lagging_warns_past_the_limit() -> None:
    backups = [make_backup(NOW - timedelta(hours=2))]
    broken = PitrHealth("the replication slot was dropped", NOW - timedelta(minutes=5), None)
    [reason] = evaluate_health(database(), backups, broken, NOW)
    assert (reason.code, reason.severity) == ("pitr_broken", "failing")
    assert "the replication slot was dropped" in reason.message
    on_time = PitrHealth(None, None, DEFAULT_LAG_LIMIT)
    assert evaluate_health(database(), backups, on_time, NOW) == []
    late = PitrHealth(None, None, DEFAULT_LAG_LIMIT + timedelta(minutes=2))
    [reason] = evaluate_health(database(), backups, late, NOW)
    assert (reason.code, reason.severity) == ("pitr_lagging", "warning")
    assert "17 min behind" in reason.message


def test_an_incident_is_raised_once_keeps_its_start_and_clears_once() -> None:
    earlier = make_backup(NOW - timedelta(hours=3))
    failed = make_backup(NOW - timedelta(hours=1), status="error")
    reasons = evaluate_health(database(), [earlier, failed], None, NOW)
    first = health_change("shop", None, reasons, NOW)
    assert first.health.status == "failing" and codes(first.raised) == ["backup_failed"]
    later = NOW + timedelta(hours=1)
    again = health_change(
        "shop", first.health, evaluate_health(database(), [earlier, failed], None, later), later
    )
    assert not again.changed
    assert again.health.since == NOW and again.health.reasons[0].since == first.raised[0].since
    good = make_backup(later)
    cleared = health_change(
        "shop",
        again.health,
        evaluate_health(database(), [earlier, failed, good], None, later),
        later,
    )
    assert cleared.health.status == "ok" and codes(cleared.cleared) == ["backup_failed"]
    assert cleared.raised == []


def test_the_messages_say_which_database_what_since_when_what_to_do_and_where_to_look() -> None:
    earlier = make_backup(datetime(2026, 12, 5, 20, 0, tzinfo=UTC))
    failed = make_backup(datetime(2026, 12, 6, 1, 0, tzinfo=UTC), status="error")
    failed = failed.model_copy(update={"error": "pg_dump: error: connection to server failed"})
    reasons = evaluate_health(database(), [earlier, failed], None, NOW)
    change = health_change("shop", None, reasons, NOW)
    [message] = alert_messages(change, "https://api.example.com/")
    assert message.subject == "[pgbackups] shop: backup failed"
    assert message.text == (
        "pgbackups: the database shop is failing.\n"
        "\n"
        "Since 2026-12-06 01:10 UTC: The last backup failed: pg_dump: error: connection to "
        "server failed. Check that the database is reachable with its registered URL, then "
        "trigger a manual backup.\n"
        "\n"
        "Dashboard: https://api.example.com/#/databases/shop"
    )
    recovered = health_change("shop", change.health, [], NOW + timedelta(hours=1))
    [message] = alert_messages(recovered, None)
    assert message.kind == "cleared"
    assert message.text == (
        "pgbackups: the database shop has recovered: backup failed (since 2026-12-06 01:10 UTC) "
        "is over.\nIts backups are healthy again."
    )
    assert alert_messages(health_change("shop", recovered.health, [], NOW), None) == []


def test_local_days_in_the_schedules_zone_do_not_matter_for_staleness() -> None:
    """Staleness is measured in elapsed time: a backup at 00:30 in Tokyo and one at
    23:30 the next day there are 47 hours apart, and the database is stale in between."""
    tokyo = ZoneInfo("Asia/Tokyo")
    first = datetime.combine(NOW.date(), time(0, 30), tzinfo=tokyo).astimezone(UTC)
    record = database(timezone="Asia/Tokyo")
    assert evaluate_health(record, [make_backup(first)], None, first + timedelta(hours=30)) == []
    assert codes(
        evaluate_health(record, [make_backup(first)], None, first + timedelta(hours=31))
    ) == ["backups_stale"]


def test_a_new_databases_alerting_settings_are_the_rules_defaults() -> None:
    alerting = database().alerting
    assert (alerting.stale_after, alerting.lag_limit) == (DEFAULT_STALE_AFTER, DEFAULT_LAG_LIMIT)
    assert database().health is None  # never evaluated
