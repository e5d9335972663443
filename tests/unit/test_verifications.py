"""Restore drills' rules: the hour they run at, when the next one is due, when they are
overdue, and the health reasons of failed restores and drills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgbackups.domain.health import alert_messages, evaluate_health, health_change
from pgbackups.domain.models import BackupRecord, DatabaseRecord, Schedule
from pgbackups.domain.restores import RestoreRecord
from pgbackups.domain.verifications import (
    VerificationRecord,
    VerificationSettings,
    VerificationState,
    drill_hour,
    next_verification_at,
    overdue_since,
    point_in_time_due,
    random_second,
    verification_due,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PARIS = Schedule(hour=1, timezone="Europe/Paris")  # winter: UTC+1
WEEKLY = VerificationSettings(enabled=True)


def test_drills_default_to_twelve_hours_from_the_backups() -> None:
    assert drill_hour(VerificationSettings(), PARIS) == 13
    assert drill_hour(VerificationSettings(), Schedule(hour=20)) == 8


def test_a_drill_never_runs_at_the_backups_hour() -> None:
    assert drill_hour(VerificationSettings(hour=1), PARIS) == 2
    assert drill_hour(VerificationSettings(hour=23), Schedule(hour=23)) == 0
    # Without scheduled backups, the hour set is kept.
    assert drill_hour(VerificationSettings(hour=1), Schedule(hour=1, enabled=False)) == 1


def test_the_first_drill_comes_at_the_next_drill_hour_in_the_schedules_zone() -> None:
    # 13:00 Paris is 12:00 UTC in December.
    assert next_verification_at(WEEKLY, PARIS, None, NOW) == NOW
    later = NOW + timedelta(minutes=1)
    assert next_verification_at(WEEKLY, PARIS, None, later) == NOW
    assert next_verification_at(WEEKLY, PARIS, None, NOW + timedelta(hours=1)) == NOW + timedelta(
        days=1
    )


def test_the_next_drill_comes_every_days_after_the_last_one() -> None:
    started = NOW + timedelta(minutes=4)  # the dispatcher's run starts it a little late
    assert next_verification_at(
        WEEKLY, PARIS, started, NOW + timedelta(hours=2)
    ) == NOW + timedelta(days=7)
    every_two = VerificationSettings(enabled=True, every_days=2)
    assert next_verification_at(every_two, PARIS, started, NOW) == NOW + timedelta(days=2)


def test_a_drill_is_due_only_in_its_hour_and_only_once_per_period() -> None:
    assert verification_due(WEEKLY, PARIS, None, NOW + timedelta(minutes=30))
    assert not verification_due(WEEKLY, PARIS, None, NOW + timedelta(hours=1))
    assert not verification_due(WEEKLY, PARIS, None, NOW - timedelta(hours=12))  # the backups'
    started = NOW + timedelta(minutes=2)
    assert not verification_due(WEEKLY, PARIS, started, NOW + timedelta(days=1))
    assert not verification_due(WEEKLY, PARIS, started, NOW + timedelta(days=6))
    assert verification_due(WEEKLY, PARIS, started, NOW + timedelta(days=7))


def test_disabled_drills_are_never_due_nor_overdue() -> None:
    off = VerificationSettings()
    assert next_verification_at(off, PARIS, None, NOW) is None
    assert not verification_due(off, PARIS, None, NOW)
    assert overdue_since(off, None, NOW - timedelta(days=400)) is None


def test_drills_are_overdue_a_day_after_every_days_without_a_pass() -> None:
    passed = VerificationState(last_passed_at=NOW)
    assert overdue_since(WEEKLY, passed, NOW - timedelta(days=30)) == NOW + timedelta(days=8)
    # Enabled recently on an old database: counted from when they were enabled.
    enabled = WEEKLY.model_copy(update={"enabled_since": NOW})
    assert overdue_since(enabled, None, NOW - timedelta(days=300)) == NOW + timedelta(days=8)


def database(**changes: object) -> DatabaseRecord:
    return DatabaseRecord(name="shop", created_at=NOW - timedelta(days=30)).model_copy(
        update=changes
    )


def fresh_backup() -> BackupRecord:
    backup = BackupRecord.new("shop", "periodic", NOW - timedelta(hours=2))
    return backup.model_copy(update={"status": "done", "finished_at": NOW - timedelta(hours=2)})


def codes(
    db: DatabaseRecord, at: datetime, restores: list[RestoreRecord] | None = None
) -> list[str]:
    return [r.code for r in evaluate_health(db, [fresh_backup()], None, at, restores=restores)]


def test_an_overdue_drill_is_a_warning_from_its_boundary() -> None:
    enabled = WEEKLY.model_copy(update={"enabled_since": NOW - timedelta(days=8)})
    db = database(verification=enabled)
    assert codes(db, NOW) == []
    [reason] = evaluate_health(db, [fresh_backup()], None, NOW + timedelta(seconds=1))
    assert (reason.code, reason.severity, reason.since) == ("verification_overdue", "warning", NOW)
    passed = VerificationState(last_status="passed", last_passed_at=NOW - timedelta(days=1))
    assert codes(database(verification=enabled, verification_state=passed), NOW) == []


def test_a_failed_drill_is_failing_until_one_passes() -> None:
    failed = VerificationState(
        last_id="01J", last_status="failed", last_at=NOW - timedelta(hours=1)
    )
    [reason] = evaluate_health(database(verification_state=failed), [fresh_backup()], None, NOW)
    assert (reason.code, reason.severity) == ("verification_failed", "failing")
    assert "01J" in reason.message
    running = failed.model_copy(update={"last_status": "running"})  # a new drill: still open
    assert codes(database(verification_state=running), NOW) == []
    passed = failed.model_copy(update={"last_status": "passed"})
    assert codes(database(verification_state=passed), NOW) == []


def restore(at: datetime, status: str) -> RestoreRecord:
    record = RestoreRecord.new(
        "shop", "01JBACKUP", "db.example.com:5432/staging", at, tables=[], schemas=[], clean=True
    )
    return record.model_copy(
        update={"status": status, "finished_at": at, "error": "pg_restore: out of disk space"}
    )


def test_a_failed_restore_is_a_warning_until_a_later_one_succeeds() -> None:
    first = restore(NOW - timedelta(hours=3), "error")
    second = restore(NOW - timedelta(hours=2), "error")
    [reason] = evaluate_health(database(), [fresh_backup()], None, NOW, restores=[second, first])
    assert (reason.code, reason.severity, reason.since) == (
        "restore_failed",
        "warning",
        first.finished_at,
    )
    assert "db.example.com:5432/staging" in reason.message and "out of disk space" in reason.message
    done = restore(NOW - timedelta(hours=1), "done")
    assert codes(database(), NOW, [first, second, done]) == []
    assert codes(database(), NOW, [done, restore(NOW, "error")]) == ["restore_failed"]
    assert codes(database(), NOW, [restore(NOW, "running")]) == []


def test_a_failed_restore_says_its_target_may_be_partial_only_when_it_was_touched() -> None:
    untouched = restore(NOW, "error").model_copy(update={"error": "the target refused us."})
    [reason] = evaluate_health(database(), [fresh_backup()], None, NOW, restores=[untouched])
    assert "the target refused us. The target was not changed" in reason.message
    assert ".." not in reason.message and "partial" not in reason.message
    interrupted = restore(NOW, "running").interrupted("pg_restore was stopped.", NOW)
    [reason] = evaluate_health(database(), [fresh_backup()], None, NOW, restores=[interrupted])
    assert "pg_restore was stopped. Its target may be partial" in reason.message


def test_one_message_when_a_drill_fails_and_one_when_it_passes_again() -> None:
    failed = database(
        verification_state=VerificationState(last_id="01J", last_status="failed", last_at=NOW)
    )
    raised = health_change("shop", None, evaluate_health(failed, [fresh_backup()], None, NOW), NOW)
    [message] = alert_messages(raised, "https://example.com/")
    assert message.kind == "raised" and "restore drill failed" in message.subject
    again = health_change(
        "shop", raised.health, evaluate_health(failed, [fresh_backup()], None, NOW), NOW
    )
    assert alert_messages(again, None) == []
    passed = database(verification_state=VerificationState(last_status="passed"))
    cleared = health_change(
        "shop", raised.health, evaluate_health(passed, [fresh_backup()], None, NOW), NOW
    )
    [recovery] = alert_messages(cleared, None)
    assert recovery.kind == "cleared" and "recovered from restore drill failed" in recovery.subject


def test_a_drills_report_lies_beside_its_backup() -> None:
    record = VerificationRecord.new("shop", NOW, backup_id="01JBACKUP", source_version="18.1")
    assert record.report_key_beside("databases/shop/backups/01JBACKUP.pgsql") == (
        f"databases/shop/backups/01JBACKUP.verification-{record.id}.json"
    )
    failed = record.failed("the task stopped", NOW)
    assert (failed.status, failed.error, failed.active) == ("failed", "the task stopped", False)


def test_a_point_in_time_drill_follows_a_finished_backup_drill_within_a_day() -> None:
    drilled = VerificationState(last_kind="backup", last_status="passed", last_at=NOW)
    assert point_in_time_due(drilled, NOW + timedelta(hours=1))
    assert not point_in_time_due(drilled, NOW + timedelta(days=1))
    assert not point_in_time_due(drilled.model_copy(update={"last_status": "running"}), NOW)
    assert not point_in_time_due(drilled.model_copy(update={"last_kind": "point_in_time"}), NOW)
    assert not point_in_time_due(None, NOW)


def test_the_random_second_lies_inside_the_range() -> None:
    start = NOW + timedelta(microseconds=300)
    end = NOW + timedelta(seconds=10, microseconds=900)
    assert random_second(start, end, lambda a, b: a) == NOW + timedelta(seconds=1)
    assert random_second(start, end, lambda a, b: b) == NOW + timedelta(seconds=10)
    assert random_second(start, start, lambda a, b: b) == start  # no whole second inside


def test_a_point_in_time_drill_does_not_push_the_next_backup_drill_a_day() -> None:
    # The backup drill at 12:00, the point in time's an hour later: next week, 12:00.
    after_point_in_time = NOW + timedelta(hours=1, minutes=3)
    assert next_verification_at(WEEKLY, PARIS, after_point_in_time, NOW + timedelta(days=1)) == (
        NOW + timedelta(days=7)
    )
