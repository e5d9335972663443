"""The dispatcher over many databases: one read, concurrent sweeps, and a backup created
by two writes (the lock, then the record), with what another run or a crash sees in between."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from pgbackups.domain.errors import BackupInProgress
from pgbackups.domain.models import BackupRecord, DatabaseRecord, Schedule
from pgbackups.services import Services
from pgbackups.usecases import dispatch as dispatch_module
from pgbackups.usecases.backup import request_backup
from pgbackups.usecases.dispatch import dispatch
from pgbackups.wiring import build_services
from tests.conftest import AwsStack, RecordingRunner

pytestmark = pytest.mark.integration

DUE = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def register_many(services: Services, count: int) -> list[str]:
    names = [f"db{n:03d}" for n in range(count)]
    for name in names:
        services.catalog.create_database(
            DatabaseRecord(
                name=name,
                schedule=Schedule(hour=3, timezone="UTC"),
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
    return names


def on_dynamodb_call(services: Services, operation: str, action: Any) -> None:
    """Run `action()` before each `operation` call of this services' DynamoDB client."""
    client = services.catalog._db  # type: ignore[attr-defined]
    client.meta.events.register(f"before-call.dynamodb.{operation}", lambda **_: action())


def failing_once() -> Callable[[], None]:
    """An action that fails its first call as a lost connection would, then does nothing."""
    calls: list[None] = []

    def fail_once() -> None:
        calls.append(None)
        if len(calls) == 1:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    return fail_once


def assert_one_scheduled_periodic_backup_each(services: Services, names: list[str]) -> None:
    for name in names:
        (backup,) = services.catalog.all_backups(name)
        assert (backup.method, backup.status) == ("periodic", "scheduled")
        assert services.catalog.get_database(name).active_backup_id == backup.id


def test_one_run_schedules_every_database_once_in_a_constant_number_of_calls_each(
    services: Services,
) -> None:
    names = register_many(services, 40)
    calls: Counter[str] = Counter()
    client = services.catalog._db  # type: ignore[attr-defined]
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.update([model.name])
    )

    report = dispatch(services, DUE)
    during = calls.copy()

    # Reported in the databases' order, whichever thread finished first.
    assert [r.database for r in report.scheduled] == names
    assert report.failed == []
    assert sorted(services.runner.calls) == sorted(  # type: ignore[attr-defined]
        (r.database, r.id) for r in report.scheduled
    )
    assert_one_scheduled_periodic_backup_each(services, names)
    # One read for the run, two writes per database; for its health, one read of its
    # continuous backups' state, one of its newest restores and (registered in January,
    # never backed up: stale) one write of its health; one read of the restores holding
    # a target.
    assert during == {"Scan": 1, "UpdateItem": 80, "PutItem": 40, "GetItem": 40, "Query": 41}

    assert dispatch(services, DUE + timedelta(minutes=20)).scheduled == []
    assert len(services.runner.calls) == 40  # type: ignore[attr-defined]


def test_a_run_starting_while_another_holds_a_lock_without_its_record_leaves_it_alone(
    aws: AwsStack, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second run reads the catalog just after the first took db000's lock and day and
    before it wrote the record: it must neither release that lock nor take the day again;
    every database still ends with exactly one periodic backup and one invocation."""
    monkeypatch.setattr(dispatch_module, "SWEEP_THREADS", 1)  # this exact interleaving
    names = register_many(services, 12)
    other = build_services(aws.settings)
    other.runner = RecordingRunner()
    reports = []

    def second_run() -> None:
        if not reports:
            reports.append(dispatch(other, DUE + timedelta(minutes=1)))

    on_dynamodb_call(services, "PutItem", second_run)
    first = dispatch(services, DUE)
    (second,) = reports

    assert [r.database for r in first.scheduled] == ["db000"]
    assert [r.database for r in second.scheduled] == names[1:]
    assert first.failed == second.failed == [] and second.reaped == []
    assert_one_scheduled_periodic_backup_each(services, names)
    invoked = services.runner.calls + other.runner.calls  # type: ignore[attr-defined]
    assert sorted(database for database, _ in invoked) == names


class Killed(BaseException):
    """The dispatcher's process stopped dead (a Lambda timeout): no handler runs."""


def test_a_lock_whose_record_never_came_is_released_after_the_grace_and_the_day_caught_up(
    services: Services,
) -> None:
    register_many(services, 1)
    services.clock = lambda: DUE

    def kill_once() -> None:
        if not killed:
            killed.append(True)
            raise Killed

    killed: list[bool] = []
    on_dynamodb_call(services, "PutItem", kill_once)
    with pytest.raises(Killed):
        dispatch(services, DUE)  # stopped between the lock and the record
    lock = services.catalog.get_database("db000").active_backup_id
    assert lock is not None and services.catalog.all_backups("db000") == []

    # Within the grace: the lock may be a record on its way; it stays, and holds the day.
    services.clock = lambda: DUE + timedelta(minutes=20)
    report = dispatch(services, services.clock())
    assert report.scheduled == [] and report.failed == []
    assert services.catalog.get_database("db000").active_backup_id == lock
    with pytest.raises(BackupInProgress):
        request_backup(services, "db000")

    # The next hour: released with its day, which this run catches up.
    services.clock = lambda: DUE + timedelta(hours=1)
    (late,) = dispatch(services, services.clock()).scheduled
    assert (late.scheduled_for, late.late_by_seconds) == (DUE, 3600)
    assert services.catalog.get_database("db000").active_backup_id == late.id
    assert [b.id for b in services.catalog.all_backups("db000")] == [late.id]


def test_a_record_that_could_not_be_written_gives_its_lock_and_day_back_at_once(
    services: Services,
) -> None:
    register_many(services, 1)
    on_dynamodb_call(services, "PutItem", failing_once())
    report = dispatch(services, DUE)

    assert report.failed == ["db000"] and report.scheduled == []
    assert services.catalog.get_database("db000").active_backup_id is None
    assert services.catalog.all_backups("db000") == []
    # The same hour's next run takes the day, on time.
    (backup,) = dispatch(services, DUE + timedelta(minutes=20)).scheduled
    assert backup.late_by_seconds == 0
    assert services.runner.calls == [("db000", backup.id)]  # type: ignore[attr-defined]


def test_a_manual_backup_whose_record_could_not_be_written_leaves_no_lock(
    services: Services,
) -> None:
    register_many(services, 1)
    on_dynamodb_call(services, "PutItem", failing_once())
    with pytest.raises(EndpointConnectionError):
        request_backup(services, "db000")

    backup = request_backup(services, "db000")
    assert services.catalog.get_database("db000").active_backup_id == backup.id
    assert [b.id for b in services.catalog.all_backups("db000")] == [backup.id]


def test_a_record_written_by_an_attempt_whose_answer_was_lost_is_used(
    services: Services,
) -> None:
    register_many(services, 1)
    lose_answer_once = failing_once()
    client = services.catalog._db  # type: ignore[attr-defined]
    client.meta.events.register("after-call.dynamodb.PutItem", lambda **_: lose_answer_once())
    (backup,) = dispatch(services, DUE).scheduled

    assert services.runner.calls == [("db000", backup.id)]  # type: ignore[attr-defined]
    assert_one_scheduled_periodic_backup_each(services, ["db000"])


def finished(services: Services, name: str, created_at: datetime, status: str) -> BackupRecord:
    record = BackupRecord.new(name, "manual", created_at)
    services.catalog.create_backup(record)
    running = services.catalog.start_backup(
        name, record.id, created_at, runner="lambda", deadline_at=created_at
    )
    assert running is not None
    done = running.model_copy(update={"status": status, "finished_at": created_at})
    assert services.catalog.finish_backup(done)
    return done


def test_the_sweep_prunes_a_database_its_read_shows_work_for_and_reads_no_other(
    aws: AwsStack, services: Services
) -> None:
    register_many(services, 3)  # due at 03:00; this run is at noon
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    services.clock = lambda: now
    expired = finished(services, "db000", now - timedelta(days=40), "error")
    interrupted = finished(services, "db001", now - timedelta(hours=2), "done")
    services.catalog.mark_deleting("db001", interrupted.id, now)  # a deletion left halfway
    services.archives._s3.put_object(  # type: ignore[attr-defined]
        Bucket=aws.settings.bucket_name, Key=interrupted.object_key, Body=b"PGDMP"
    )
    kept = finished(services, "db002", now - timedelta(hours=1), "done")
    calls: Counter[str] = Counter()
    client = services.catalog._db  # type: ignore[attr-defined]
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.update([model.name])
    )

    report = dispatch(services, now)
    during = calls.copy()

    assert [r.id for r in report.pruned] == [expired.id]
    assert services.catalog.all_backups("db000") == []
    assert services.catalog.pending_deletions("db001") == []
    assert aws.object_keys() == []
    assert [b.id for b in services.catalog.all_backups("db002")] == [kept.id]
    assert report.scheduled == [] and report.failed == []
    # The scan, the restores holding a target, each database's newest restores (its
    # health), then for db000 and db001 only the pruning's own reads and deletions (with
    # the drill reports of each backup deleted).
    assert during["Scan"] == 1 and during["Query"] == 1 + 3 + 4 + 2
