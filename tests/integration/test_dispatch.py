"""The hourly dispatcher on moto: due databases, duplicates, stale records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pgbackups.domain.models import (
    BackupRecord,
    BackupRequest,
    ConnectionInfo,
    DatabaseRecord,
    Schedule,
)
from pgbackups.services import Services
from pgbackups.usecases.dispatch import dispatch
from tests.conftest import AwsStack, RecordingRunner, load_event, load_function

pytestmark = pytest.mark.integration


def register(services: Services, name: str, schedule: Schedule) -> None:
    services.catalog.create_database(
        DatabaseRecord(name=name, schedule=schedule, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    )
    services.secrets.put(name, ConnectionInfo(url=f"postgresql://u:p@127.0.0.1:1/{name}"))


def test_due_databases_get_one_periodic_backup_per_day(services: Services) -> None:
    register(services, "paris", Schedule(hour=1, timezone="Europe/Paris"))
    register(services, "tokyo", Schedule(hour=1, timezone="Asia/Tokyo"))
    register(services, "off", Schedule(enabled=False, hour=1, timezone="Europe/Paris"))
    winter_1am_paris = datetime(2026, 11, 25, 0, 0, 5, tzinfo=UTC)

    first = dispatch(services, winter_1am_paris)
    second = dispatch(services, winter_1am_paris + timedelta(minutes=20))

    assert [r.database for r in first.scheduled] == ["paris"]
    assert second.scheduled == []
    (backup,) = services.catalog.all_backups("paris")
    assert (backup.method, backup.status) == ("periodic", "scheduled")
    assert services.runner.calls == [("paris", backup.id)]  # type: ignore[attr-defined]
    assert services.catalog.all_backups("tokyo") == []
    assert services.catalog.all_backups("off") == []
    assert services.catalog.get_database("paris").active_backup_id == backup.id


def test_summer_schedule_is_due_an_hour_earlier_in_utc(services: Services) -> None:
    register(services, "paris", Schedule(hour=1, timezone="Europe/Paris"))

    (backup,) = dispatch(services, datetime(2026, 7, 1, 23, 0, tzinfo=UTC)).scheduled
    assert backup.scheduled_for == datetime(2026, 7, 1, 23, 0, tzinfo=UTC)
    assert backup.late_by_seconds == 0


def test_a_stale_running_backup_is_reaped_and_the_lock_released(
    aws: AwsStack, services: Services
) -> None:
    register(services, "shop", Schedule(hour=3, timezone="UTC"))
    started = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    record = BackupRecord.new("shop", "manual", started)
    services.catalog.create_backup(record)
    services.catalog.start_backup(
        "shop", record.id, started, runner="lambda", deadline_at=started + timedelta(minutes=15)
    )
    services.catalog.record_upload_progress("shop", record.id, 8 * 2**20)

    # Within its deadline (the function's 15 min timeout) and grace: left alone.
    services.clock = lambda: started + timedelta(minutes=19)
    assert dispatch(services, services.clock()).reaped == []
    services.clock = lambda: started + timedelta(minutes=21)
    report = dispatch(services, services.clock())

    assert [r.id for r in report.reaped] == [record.id]
    stored = services.catalog.get_backup("shop", record.id)
    assert stored.status == "error"
    assert stored.error and stored.error.startswith("timed out")
    assert stored.uploaded is None  # only a running backup has progress
    assert services.catalog.get_database("shop").active_backup_id is None
    assert [e["detail-type"] for e in aws.received_events()] == ["Backup Failed"]


def test_a_running_backup_is_reaped_by_its_own_deadline_not_the_function_timeout(
    services: Services,
) -> None:
    """A runner with a longer limit than the Lambda's (a container) is not reaped early."""
    register(services, "shop", Schedule(hour=3, timezone="UTC"))
    started = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    record = BackupRecord.new("shop", "manual", started)
    services.catalog.create_backup(record)
    deadline = started + timedelta(hours=2)
    services.catalog.start_backup(
        "shop", record.id, started, runner="fargate", deadline_at=deadline
    )

    # Past the backup function's 15 minutes, an hour before its own deadline: left alone.
    services.clock = lambda: deadline - timedelta(hours=1)
    assert dispatch(services, services.clock()).reaped == []
    assert services.catalog.get_backup("shop", record.id).status == "running"
    services.clock = lambda: deadline + timedelta(minutes=6)
    (reaped,) = dispatch(services, services.clock()).reaped
    assert reaped.id == record.id and (reaped.error or "").startswith("timed out: the fargate run")


def test_a_scheduled_backup_never_started_is_reaped(services: Services) -> None:
    register(services, "shop", Schedule(hour=3, timezone="UTC"))
    created = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    record = BackupRecord.new("shop", "manual", created)
    services.catalog.create_backup(record)

    services.clock = lambda: created + timedelta(minutes=10)
    assert dispatch(services, services.clock()).reaped == []
    services.clock = lambda: created + timedelta(minutes=31)
    assert [r.id for r in dispatch(services, services.clock()).reaped] == [record.id]
    assert "never started" in (services.catalog.get_backup("shop", record.id).error or "")


def test_the_handler_takes_the_scheduled_event(aws: AwsStack, lambda_context: Any) -> None:
    dispatcher = load_function("dispatcher")
    dispatcher.services.runner = RecordingRunner()
    register(dispatcher.services, "paris", Schedule(hour=1, timezone="Europe/Paris"))
    event = load_event("dispatcher") | {"time": "2026-11-25T00:00:00Z"}

    result = dispatcher.handler(event, lambda_context)

    (backup,) = dispatcher.services.catalog.all_backups("paris")
    assert result == {"scheduled": [backup.id], "reaped": [], "pruned": []}
    assert dispatcher.handler(event, lambda_context)["scheduled"] == []


def test_a_simulated_future_hour_does_not_reap_or_prune_by_that_hour(services: Services) -> None:
    """`pgbackups local dispatch --at` a day ahead schedules, but ages nothing."""
    register(services, "shop", Schedule(hour=1, timezone="Europe/Paris"))
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    services.clock = lambda: now
    record = BackupRecord.new("shop", "manual", now)
    services.catalog.create_backup(record)
    services.catalog.start_backup(
        "shop", record.id, now, runner="lambda", deadline_at=now + timedelta(minutes=15)
    )

    report = dispatch(services, now + timedelta(days=2))

    assert report.reaped == []
    assert services.catalog.get_backup("shop", record.id).status == "running"


def test_one_database_failing_does_not_stop_the_others(services: Services) -> None:
    register(services, "a-first", Schedule(hour=1, timezone="UTC"))
    register(services, "b-second", Schedule(hour=1, timezone="UTC"))
    runner = services.runner

    class FailingFirst:
        name = "lambda"

        def start(self, request: BackupRequest) -> None:
            if request.database == "a-first":
                raise ConnectionError("Lambda unreachable")
            runner.start(request)

    services.runner = FailingFirst()  # type: ignore[assignment]
    report = dispatch(services, datetime(2026, 11, 25, 1, 0, tzinfo=UTC))

    assert [r.database for r in report.scheduled] == ["b-second"]
    (failed,) = services.catalog.all_backups("a-first")
    assert failed.status == "error"
    assert failed.error == "the backup function could not be started (ConnectionError)"
    # Its lock is released: a manual backup can be taken right away.
    assert services.catalog.get_database("a-first").active_backup_id is None


def test_a_lock_without_its_record_is_released(services: Services) -> None:
    register(services, "shop", Schedule(hour=3, timezone="UTC"))
    record = BackupRecord.new("shop", "manual", datetime(2026, 11, 25, tzinfo=UTC))
    services.catalog.create_backup(record)
    services.catalog.delete_backup_record("shop", record.id)

    dispatch(services, datetime(2026, 11, 25, 12, 0, tzinfo=UTC))  # no periodic backup due

    assert services.catalog.get_database("shop").active_backup_id is None


# -- no lost day: catching up a missed hour ---------------------------------------------


def finish(services: Services, backup: BackupRecord, status: str) -> None:
    running = services.catalog.start_backup(
        backup.database,
        backup.id,
        backup.created_at,
        runner="lambda",
        deadline_at=backup.created_at + timedelta(minutes=15),
    )
    assert running is not None
    update: dict[str, Any] = {"status": status, "finished_at": backup.created_at}
    if status == "error":
        update["error"] = "pg_dump: error: connection refused"
    assert services.catalog.finish_backup(running.model_copy(update=update))


def periodic(services: Services, database: str) -> list[BackupRecord]:
    return [b for b in services.catalog.all_backups(database) if b.method == "periodic"]


DUE = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # 03:00 UTC


def test_a_manual_backup_holding_the_lock_delays_the_periodic_one_an_hour(
    services: Services,
) -> None:
    register(services, "shop", Schedule(hour=3, timezone="UTC"))
    services.clock = lambda: DUE  # the manual backup is not stale: the reaper leaves it
    manual = BackupRecord.new("shop", "manual", DUE - timedelta(minutes=5))
    services.catalog.create_backup(manual)

    assert dispatch(services, DUE).scheduled == []
    finish(services, manual, "done")
    (late,) = dispatch(services, DUE + timedelta(hours=1)).scheduled

    assert (late.method, late.scheduled_for, late.late_by_seconds) == ("periodic", DUE, 3600)
    assert services.catalog.get_backup("shop", late.id).late_by_seconds == 3600
    assert dispatch(services, DUE + timedelta(hours=2)).scheduled == []  # one per day


def test_a_failed_dispatcher_run_is_caught_up_later_that_day(services: Services) -> None:
    register(services, "shop", Schedule(hour=3, timezone="UTC"))

    # The 03:00 and 04:00 runs never happened; the 06:00 one catches up.
    (late,) = dispatch(services, DUE + timedelta(hours=3)).scheduled

    assert (late.scheduled_for, late.late_by_seconds) == (DUE, 3 * 3600)


def test_a_backup_that_could_not_start_is_retried_the_next_hour(services: Services) -> None:
    register(services, "shop", Schedule(hour=3, timezone="UTC"))
    runner = services.runner
    runner.error = ConnectionError("Lambda unreachable")  # type: ignore[attr-defined]

    assert dispatch(services, DUE).failed == ["shop"]
    runner.error = None  # type: ignore[attr-defined]
    (retried,) = dispatch(services, DUE + timedelta(hours=1)).scheduled

    assert retried.late_by_seconds == 3600
    assert sorted(b.status for b in periodic(services, "shop")) == ["error", "scheduled"]


def test_a_failed_periodic_backup_leaves_the_day_open_a_done_one_closes_it(
    services: Services,
) -> None:
    register(services, "shop", Schedule(hour=3, timezone="UTC"))
    (first,) = dispatch(services, DUE).scheduled
    finish(services, first, "error")
    (second,) = dispatch(services, DUE + timedelta(hours=1)).scheduled
    finish(services, second, "done")

    assert dispatch(services, DUE + timedelta(hours=2)).scheduled == []
    assert [b.status for b in periodic(services, "shop")] == ["done", "error"]


def test_catching_up_stops_six_hours_late_and_at_the_end_of_the_local_day(
    services: Services,
) -> None:
    register(services, "shop", Schedule(hour=3, timezone="UTC"))
    register(services, "night", Schedule(hour=22, timezone="UTC"))

    assert dispatch(services, DUE + timedelta(hours=7)).scheduled == []
    assert dispatch(services, datetime(2026, 11, 25, 23, 0, tzinfo=UTC)).scheduled != []
    services.catalog.remove_database("night", DUE)  # nothing more from it
    # 22:00 missed on the 24th: not caught up after midnight on the 25th.
    register(services, "late", Schedule(hour=22, timezone="UTC"))
    assert dispatch(services, datetime(2026, 11, 26, 0, 0, tzinfo=UTC)).scheduled == []


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        # Spring forward in Paris, 2026-03-29: 02:00 does not exist; due at 03:00 CEST
        # (01:00 UTC). That run missed, the 02:00 UTC run is one hour late.
        ([datetime(2026, 3, 29, 2, 0, tzinfo=UTC)], [("2026-03-29T01:00:00+00:00", 3600)]),
        # Fall back, 2026-10-25: 02:00 happens twice (00:00 and 01:00 UTC). The first
        # missed, the repeated hour catches up, one hour late in real time.
        ([datetime(2026, 10, 25, 1, 0, tzinfo=UTC)], [("2026-10-25T00:00:00+00:00", 3600)]),
        # Fall back, both runs: one backup for the day.
        (
            [datetime(2026, 10, 25, 0, 0, tzinfo=UTC), datetime(2026, 10, 25, 1, 0, tzinfo=UTC)],
            [("2026-10-25T00:00:00+00:00", 0)],
        ),
        # The day after spring forward, due at 02:00 CEST (00:00 UTC): six hours late
        # is still caught up, seven is not.
        ([datetime(2026, 3, 30, 6, 0, tzinfo=UTC)], [("2026-03-30T00:00:00+00:00", 6 * 3600)]),
        ([datetime(2026, 3, 30, 7, 0, tzinfo=UTC)], []),
    ],
)
def test_catching_up_across_dst_changes(
    services: Services, runs: list[datetime], expected: list[tuple[str, int]]
) -> None:
    register(services, "paris", Schedule(hour=2, timezone="Europe/Paris"))

    for at in runs:
        dispatch(services, at)

    assert [
        (b.scheduled_for.isoformat() if b.scheduled_for else None, b.late_by_seconds)
        for b in periodic(services, "paris")
    ] == expected


def test_a_database_registered_after_the_due_hour_is_not_caught_up(services: Services) -> None:
    services.catalog.create_database(
        DatabaseRecord(
            name="new",
            schedule=Schedule(hour=3, timezone="UTC"),
            created_at=DUE + timedelta(minutes=30),
        )
    )

    assert dispatch(services, DUE + timedelta(hours=1)).scheduled == []


def store_timezone(aws: AwsStack, database: str, timezone: str) -> None:
    """Write a schedule's time zone straight into the table, as an older release (or
    an older time zone database) left it: no check of ours runs."""
    items = aws.dynamodb.scan(TableName=aws.settings.table_name)["Items"]
    (item,) = [i for i in items if i.get("name") == {"S": database} and "schedule" in i]
    aws.dynamodb.update_item(
        TableName=aws.settings.table_name,
        Key={"pk": item["pk"], "sk": item["sk"]},
        UpdateExpression="SET #schedule.#timezone = :timezone",
        ExpressionAttributeNames={"#schedule": "schedule", "#timezone": "timezone"},
        ExpressionAttributeValues={":timezone": {"S": timezone}},
    )


def test_a_time_zone_the_runtime_no_longer_knows_fails_its_database_only(
    aws: AwsStack, services: Services
) -> None:
    register(services, "gone", Schedule(hour=1, timezone="America/Los_Angeles"))
    register(services, "paris", Schedule(hour=1, timezone="Europe/Paris"))
    store_timezone(aws, "gone", "US/Pacific-New")  # dropped by the time zone database in 2020

    report = dispatch(services, datetime(2026, 11, 25, 0, 0, tzinfo=UTC))

    assert [r.database for r in report.scheduled] == ["paris"]
    assert report.failed == ["gone"]
    assert services.catalog.all_backups("gone") == []
    assert services.catalog.get_database("gone").schedule.timezone == "US/Pacific-New"
