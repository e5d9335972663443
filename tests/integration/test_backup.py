"""The backup function end to end: real PostgreSQL 18, the layer's pg_dump, moto S3.

Every fault must leave an `error` record with a readable reason, no object and
no pending multipart upload in the bucket, the lock released, and a following
backup that succeeds.
"""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pgbackups.adapters.catalog import Catalog
from pgbackups.domain.models import (
    DEFAULT_COMPRESSION,
    BackupRecord,
    BackupRequest,
    ConnectionInfo,
    DatabaseRecord,
)
from pgbackups.postgres.dump import RESTORE_FLAGS
from pgbackups.postgres.pgtools import PgTools, launch
from pgbackups.services import Services
from pgbackups.usecases.backup import DEADLINE_MARGIN_SECONDS, UploadProgress, run_backup
from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, RecordingRunner, load_event, load_function

pytestmark = pytest.mark.integration

SQL = Path(__file__).parent / "sql"


def register(services: Services, name: str, url: str, replica_url: str | None = None) -> None:
    services.catalog.create_database(
        DatabaseRecord(name=name, created_at=datetime.now(UTC), has_replica=bool(replica_url))
    )
    services.secrets.put(name, ConnectionInfo(url=url, replica_url=replica_url))


def schedule(services: Services, database: str, method: str = "manual") -> BackupRecord:
    record = BackupRecord.new(database, method, datetime.now(UTC))  # type: ignore[arg-type]
    services.catalog.create_backup(record)
    return record


def backup_now(services: Services, database: str, *, seconds_left: float = 600) -> BackupRecord:
    record = schedule(services, database)
    finished = run_backup(
        services,
        BackupRequest(database=database, backup_id=record.id),
        seconds_left=seconds_left,
        runner="lambda",
    )
    assert finished is not None
    return finished


def restore(tools: PgTools, archive: bytes, target: EmbeddedPostgres, database: str) -> None:
    target.create_database(database)
    result = subprocess.run(
        [
            tools.program("pg_restore"),
            *RESTORE_FLAGS,
            "--exit-on-error",
            f"--dbname={target.url(database)}",
        ],
        input=archive,
        capture_output=True,
        env=tools.environment(),
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()


def table_digests(server: EmbeddedPostgres, database: str) -> dict[str, str]:
    """An ordered digest of every table's rows (partitions and materialized views too)."""
    tables = server.psql(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
        database,
    ).splitlines()
    return {
        table: server.psql(
            f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
            f" FROM {table} t",
            database,
        )
        for table in tables
    }


def sequence_values(server: EmbeddedPostgres, database: str) -> str:
    return server.psql(
        "SELECT string_agg(format('%s=%s', schemaname || '.' || sequencename, last_value), ',' ORDER BY schemaname, sequencename)"
        " FROM pg_sequences",
        database,
    )


def large_objects(server: EmbeddedPostgres, database: str) -> str:
    return server.psql(
        "SELECT string_agg(oid || ':' || md5(lo_get(oid)), ',' ORDER BY oid) FROM pg_largeobject_metadata",
        database,
    )


def assert_clean_failure(
    aws: AwsStack, services: Services, record: BackupRecord, reason: str
) -> None:
    assert record.status == "error"
    assert reason in (record.error or ""), record.error
    stored = services.catalog.get_backup(record.database, record.id)
    assert stored.status == "error" and stored.error == record.error
    assert aws.object_keys() == []
    assert aws.pending_uploads() == []
    assert services.catalog.get_database(record.database).active_backup_id is None
    assert [e["detail-type"] for e in aws.received_events()] == ["Backup Failed"]
    # The next backup succeeds.
    again = backup_now(services, record.database)
    assert again.status == "done", again.error
    assert aws.object_keys() == [again.object_key]


# -- fidelity ----------------------------------------------------------------------------


def test_backup_restores_every_row_sequence_and_large_object(
    aws: AwsStack, postgres: EmbeddedPostgres, database_name: str, database_url: str,
    pgtools_dir: Path, lambda_context: Any,
) -> None:  # fmt: skip
    postgres.psql((SQL / "fidelity.sql").read_text(), database_name)
    postgres.psql("REFRESH MATERIALIZED VIEW sales.revenue_by_city", database_name)
    backup_function = load_function("backup")
    backup_function.services.runner = RecordingRunner()
    services = backup_function.services
    register(services, "shop", database_url)
    record = schedule(services, "shop")
    event = load_event("backup") | {"database": "shop", "backup_id": record.id}

    result = backup_function.handler(event, lambda_context)

    assert result == {"backup_id": record.id, "status": "done"}
    done = services.catalog.get_backup("shop", record.id)
    archive = aws.s3.get_object(Bucket=aws.settings.bucket_name, Key=done.object_key)["Body"].read()
    import hashlib

    assert archive[:5] == b"PGDMP"
    assert done.size == len(archive)
    assert done.sha256 == hashlib.sha256(archive).hexdigest()
    assert done.source == "primary"
    assert done.compression == DEFAULT_COMPRESSION == "zstd:1"
    assert done.server_version and done.server_version.startswith("18.")
    assert done.pg_dump_version and done.pg_dump_version.startswith("18.")
    assert done.database_size and done.database_size > 0
    assert done.started_at and done.finished_at and done.started_at <= done.finished_at
    assert done.name == f"{done.created_at:%Y%m%d%H%M%S}_shop"
    assert [e["detail-type"] for e in aws.received_events()] == ["Backup Succeeded"]
    assert services.catalog.get_database("shop").active_backup_id is None

    restored = f"{database_name}_restored"
    restore(PgTools(pgtools_dir), archive, postgres, restored)
    source_tables = table_digests(postgres, database_name)
    assert len(source_tables) >= 10
    assert table_digests(postgres, restored) == source_tables
    assert sequence_values(postgres, restored) == sequence_values(postgres, database_name)
    assert "sales.invoice_number=" in sequence_values(postgres, restored)
    assert large_objects(postgres, restored) == large_objects(postgres, database_name)
    assert large_objects(postgres, restored).count(":") == 5
    # Functions and triggers came along: an insert fires the restored trigger.
    postgres.psql(
        "INSERT INTO sales.orders (customer_id, state, total, placed_at) VALUES (1, 'paid', 1, now())",
        restored,
    )
    assert postgres.psql("SELECT count(*) FROM sales.audit_log", restored) == "2001"
    assert postgres.psql("SELECT sales.order_total(1) > 0", restored) == "t"


def test_a_retried_invocation_changes_nothing(
    aws: AwsStack, services: Services, database_url: str, lambda_context: Any
) -> None:
    backup_function = load_function("backup")
    register(backup_function.services, "shop", database_url)
    record = schedule(backup_function.services, "shop")
    event = {"database": "shop", "backup_id": record.id}
    assert backup_function.handler(event, lambda_context)["status"] == "done"
    first = services.catalog.get_backup("shop", record.id)

    assert backup_function.handler(event, lambda_context) == {
        "backup_id": record.id,
        "status": "unchanged",
    }
    assert services.catalog.get_backup("shop", record.id) == first
    assert len(aws.object_keys()) == 1
    assert len(aws.received_events()) == 1


# -- faults ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_database(postgres: EmbeddedPostgres) -> str:
    """~150 MB of poorly compressible rows: a dump long enough to interrupt."""
    name = "big_faults"
    postgres.create_database(name)
    postgres.psql(
        "CREATE TABLE payload AS SELECT g AS id,"
        " md5(g::text) || md5((g * 3)::text) || md5((g * 7)::text) || md5((g * 11)::text) AS body"
        " FROM generate_series(1, 1000000) AS g",
        name,
    )
    return postgres.url(name)


class TappedStdout(io.RawIOBase):
    """pg_dump's stdout, calling `tap` once after `after_bytes` bytes went through."""

    def __init__(self, raw: Any, after_bytes: int, tap: Callable[[], None]) -> None:
        super().__init__()
        self._raw = raw
        self._after = after_bytes
        self._seen = 0
        self._tap: Callable[[], None] | None = tap

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        self._seen += count or 0
        if self._tap is not None and self._seen >= self._after:
            tap, self._tap = self._tap, None
            tap()
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


def tapped_launcher(after_bytes: int, tap: Callable[[subprocess.Popen[bytes]], None]):  # type: ignore[no-untyped-def]
    def launcher(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = launch(argv, env)
        process.stdout = TappedStdout(process.stdout, after_bytes, lambda: tap(process))  # type: ignore[assignment]
        return process

    return launcher


def test_pg_dump_killed_mid_stream(aws: AwsStack, services: Services, big_database: str) -> None:
    register(services, "big", big_database)
    services.launcher = tapped_launcher(2 << 20, lambda process: process.kill())

    failed = backup_now(services, "big")

    services.launcher = launch
    assert_clean_failure(aws, services, failed, "pg_dump was killed by signal 9")


def test_connection_terminated_by_the_server_mid_dump(
    aws: AwsStack, services: Services, postgres: EmbeddedPostgres, big_database: str
) -> None:
    register(services, "big", big_database)

    def terminate(_: subprocess.Popen[bytes]) -> None:
        postgres.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'pgbackups' AND pid <> pg_backend_pid()"
        )

    services.launcher = tapped_launcher(2 << 20, terminate)
    failed = backup_now(services, "big")
    services.launcher = launch
    assert_clean_failure(aws, services, failed, "terminat")


def test_wrong_password(
    aws: AwsStack, services: Services, postgres: EmbeddedPostgres, database_name: str
) -> None:
    postgres.create_database(database_name)
    wrong = postgres.url(database_name, password="not-the-password")
    register(services, "shop", wrong)

    failed = backup_now(services, "shop")

    assert "not-the-password" not in (failed.error or "")
    assert "password authentication failed" in (failed.error or "")
    services.secrets.put("shop", ConnectionInfo(url=postgres.url(database_name)))
    assert_clean_failure(
        aws, services, failed, "cannot connect to postgresql://postgres:***@127.0.0.1"
    )


def test_database_down(aws: AwsStack, services: Services) -> None:
    down = EmbeddedPostgres(name="down").init().start()
    url = down.url("postgres")
    down.stop()
    try:
        register(services, "shop", url)
        failed = backup_now(services, "shop")
        assert "Connection refused" in (failed.error or ""), failed.error
        down.start()
        assert_clean_failure(aws, services, failed, "cannot connect")
    finally:
        down.destroy()


def test_s3_failing_on_a_part_upload(aws: AwsStack, services: Services, big_database: str) -> None:
    register(services, "big", big_database)
    s3_events = services.archives._s3.meta.events
    parts = {"count": 0}

    def fail_second_part(**_: Any) -> None:
        parts["count"] += 1
        if parts["count"] == 2:
            raise ConnectionError("injected: S3 refused the part upload")

    s3_events.register("before-call.s3.UploadPart", fail_second_part)
    try:
        failed = backup_now(services, "big")
    finally:
        s3_events.unregister("before-call.s3.UploadPart", fail_second_part)
    assert parts["count"] >= 2
    assert_clean_failure(
        aws, services, failed, "upload to S3 failed: injected: S3 refused the part upload"
    )


def test_deadline_reached(aws: AwsStack, services: Services, big_database: str) -> None:
    register(services, "big", big_database)
    # A slow stream (S3 or the network stalling after 2 MiB) meets a 1-second budget.
    services.launcher = tapped_launcher(2 << 20, lambda process: time.sleep(3))

    failed = backup_now(services, "big", seconds_left=DEADLINE_MARGIN_SECONDS + 1)

    services.launcher = launch
    assert failed.error == "timed out"
    assert_clean_failure(aws, services, failed, "timed out")


# -- replica -----------------------------------------------------------------------------


def test_a_registered_replica_is_used(aws: AwsStack, services: Services, postgres: EmbeddedPostgres, database_name: str, database_url: str) -> None:  # fmt: skip
    postgres.psql("CREATE TABLE t AS SELECT generate_series(1, 100) AS x", database_name)
    replica = postgres.start_replica()
    try:
        replica.wait_ready()
        register(services, "shop", database_url, replica.url(database_name))
        done = backup_now(services, "shop")
        assert done.status == "done", done.error
        assert done.source == "replica"
    finally:
        replica.destroy()


def test_an_unreachable_replica_falls_back_to_the_primary(
    aws: AwsStack,
    services: Services,
    postgres: EmbeddedPostgres,
    database_name: str,
    database_url: str,
) -> None:
    refused = EmbeddedPostgres(name="gone")  # never started: its port refuses connections
    register(services, "shop", database_url, refused.url(database_name))

    done = backup_now(services, "shop")

    assert done.status == "done", done.error
    assert done.source == "primary"


# -- races and notifications -------------------------------------------------------------


def test_a_backup_reaped_while_it_ran_leaves_no_archive(aws: AwsStack, services: Services, database_url: str) -> None:  # fmt: skip
    register(services, "shop", database_url)
    record = schedule(services, "shop")

    def reaped_meanwhile(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        # The dispatcher's reaper gives up on this backup while pg_dump runs.
        running = services.catalog.get_backup("shop", record.id)
        reaped = running.model_copy(update={"status": "error", "error": "timed out: reaped"})
        assert services.catalog.finish_backup(reaped)
        return launch(argv, env)

    services.launcher = reaped_meanwhile
    result = run_backup(
        services,
        BackupRequest(database="shop", backup_id=record.id),
        seconds_left=600,
        runner="lambda",
    )

    assert result is not None and result.status == "error" and result.error == "timed out: reaped"
    assert aws.object_keys() == []
    assert aws.received_events() == []


def test_a_failing_event_bus_does_not_fail_the_backup(aws: AwsStack, services: Services, database_url: str) -> None:  # fmt: skip
    register(services, "shop", database_url)

    def bus_down(record: BackupRecord) -> None:
        raise ConnectionError("EventBridge unreachable")

    services.events.publish = bus_down  # type: ignore[method-assign]
    done = backup_now(services, "shop")

    assert done.status == "done"
    assert services.catalog.get_backup("shop", done.id).status == "done"
    assert aws.object_keys() == [done.object_key]
    assert services.catalog.get_database("shop").active_backup_id is None


def test_a_huge_pg_dump_message_is_capped_so_the_failure_is_recorded(
    aws: AwsStack, services: Services, database_url: str
) -> None:
    register(services, "shop", database_url)

    def shouting_pg_dump(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        # One 1 MB line on stderr, then a failure: more than a DynamoDB item may hold.
        script = "head -c 1000000 /dev/zero | tr '\\0' x >&2; echo ' the end' >&2; exit 1"
        return launch(["sh", "-c", script], env)

    services.launcher = shouting_pg_dump
    failed = backup_now(services, "shop")

    assert failed.status == "error"
    assert failed.error is not None and len(failed.error) <= 4096
    assert failed.error.endswith("x the end")
    stored = services.catalog.get_backup("shop", failed.id)
    assert stored.status == "error" and stored.error == failed.error
    assert services.catalog.get_database("shop").active_backup_id is None


# -- progress ----------------------------------------------------------------------------


def test_a_running_backup_records_how_much_of_its_archive_is_in_s3(
    aws: AwsStack, services: Services, big_database: str
) -> None:
    register(services, "big", big_database)
    seen: list[tuple[int, BackupRecord]] = []
    record_upload_progress = services.catalog.record_upload_progress

    def record_and_read(database: str, backup_id: str, uploaded: int) -> None:
        record_upload_progress(database, backup_id, uploaded)
        seen.append((uploaded, services.catalog.get_backup(database, backup_id)))  # as polled

    services.catalog.record_upload_progress = record_and_read  # type: ignore[method-assign]
    done = backup_now(services, "big")

    assert done.status == "done", done.error
    assert seen, "no progress was recorded"
    assert [stored.uploaded for _, stored in seen] == [uploaded for uploaded, _ in seen]
    assert all(stored.status == "running" for _, stored in seen)
    assert seen[0][0] >= 8 * 2**20  # from the first part on
    assert all(uploaded <= (done.size or 0) for uploaded, _ in seen)
    # Only a running backup has progress.
    assert services.catalog.get_backup("big", done.id).uploaded is None


def test_progress_is_recorded_at_the_first_part_then_every_few_seconds(
    services: Services, database_url: str
) -> None:
    register(services, "shop", database_url)
    record = schedule(services, "shop")
    now = datetime.now(UTC)
    running = services.catalog.start_backup(
        "shop", record.id, now, runner="lambda", deadline_at=now + timedelta(minutes=15)
    )
    assert running is not None
    clock = [100.0]
    progress = UploadProgress(services.catalog, running, clock=lambda: clock[0])
    shown = []
    for seconds, mib in ((0.0, 8), (1.0, 16), (1.9, 24), (2.1, 32), (3.0, 40), (4.2, 48)):
        clock[0] = 100.0 + seconds
        progress(mib * 2**20)
        shown.append((services.catalog.get_backup("shop", record.id).uploaded or 0) // 2**20)
    assert shown == [8, 8, 8, 32, 32, 48]

    # A part that reports after the backup finished changes nothing.
    assert services.catalog.finish_backup(running.model_copy(update={"status": "done"}))
    clock[0] += 60
    progress(56 * 2**20)
    assert services.catalog.get_backup("shop", record.id).uploaded is None


def test_a_progress_write_that_fails_is_logged_not_raised(
    services: Services, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    register(services, "shop", database_url)
    record = schedule(services, "shop")
    unreachable = Catalog(services.catalog._db, "no-such-table")  # type: ignore[attr-defined]
    UploadProgress(unreachable, record)(8 * 2**20)  # does not raise
    assert "could not record the upload's progress" in caplog.text
