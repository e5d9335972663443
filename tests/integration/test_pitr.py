"""Continuous backups end to end: real servers (the wheel's 18, Debian's 15), moto, restores.

Rows are committed at known times across several capture runs, then restored to
a moment between two commits (exactly the rows before it) and to the latest
state (every row, the last ones only in the partial segment). Base backups go
through the backups' runner: the RecordingRunner records their requests, and the
tests run them as the backup function does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pgbackups.domain.errors import OutsideRecoveryWindow, ReplicationRefused, WalMissing
from pgbackups.domain.models import BackupRequest, ConnectionInfo, DatabaseRecord, to_rfc3339
from pgbackups.domain.pitr import BaseBackup, PitrSettings
from pgbackups.postgres import lsn, records, slots, wal
from pgbackups.postgres.cluster import ClusterFailed
from pgbackups.services import Services
from pgbackups.usecases import pitr
from pgbackups_cli.pitr import (
    RecoveredCluster,
    plan_pages,
    restore_cluster,
    server_binaries,
)
from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, LambdaContext, RecordingRunner, load_function
from tests.integration.api import Api

pytestmark = pytest.mark.integration

DEBIAN_15 = Path("/usr/lib/postgresql/15")
CACHE = Path("/var/tmp/pgbackups-test-cache")


class DebianPostgres(EmbeddedPostgres):
    """A throwaway cluster of Debian's PostgreSQL 15 (installed by `make setup`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.install = DEBIAN_15


def start_server(major: str, extra_conf: str = "") -> EmbeddedPostgres:
    if major == "15":
        if not (DEBIAN_15 / "bin" / "postgres").exists():
            pytest.fail("PostgreSQL 15 is missing: `make setup` installs postgresql-15")
        server: EmbeddedPostgres = DebianPostgres(name="pitr15")
    else:
        server = EmbeddedPostgres(name="pitr18")
    return server.init(extra_conf=extra_conf).start()


@pytest.fixture(autouse=True)
def binaries_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    CACHE.mkdir(mode=0o755, exist_ok=True)
    monkeypatch.setenv("PGBACKUPS_CACHE_DIR", str(CACHE))


@pytest.fixture(params=["18", "15"])
def source(request: pytest.FixtureRequest) -> Iterator[EmbeddedPostgres]:
    server = start_server(request.param)
    try:
        yield server
    finally:
        server.destroy()


def register(services: Services, server: EmbeddedPostgres, name: str) -> str:
    url = server.create_database(name)
    services.catalog.create_database(DatabaseRecord(name=name, created_at=datetime.now(UTC)))
    services.secrets.put(name, ConnectionInfo(url=url))
    server.psql("CREATE TABLE events (id int PRIMARY KEY, note text)", name)
    return url


def commit_row(server: EmbeddedPostgres, database: str, row: int) -> datetime:
    """Insert one row; the commit's own timestamp, as the server's clock has it."""
    # The test servers run with synchronous_commit = off: this commit is flushed at once.
    server.psql(
        f"SET synchronous_commit = on; INSERT INTO events VALUES ({row}, 'row {row}')", database
    )
    stamp = server.psql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def plan_json(
    services: Services, database: str, target: datetime | None, cursor: str | None = None
) -> dict[str, Any]:
    page = pitr.plan_restore(services, database, target, cursor=cursor, limit=1)
    text = json.dumps(
        pitr.restore_links(services, page),
        default=lambda v: to_rfc3339(v) if isinstance(v, datetime) else v,
    )
    result: dict[str, Any] = json.loads(text)
    return result


def restored_rows(cluster: RecoveredCluster, database: str) -> list[int]:
    out = cluster.run(
        "psql", "--no-psqlrc", "-h", str(cluster.socket_dir), "-p", str(cluster.port),
        "-U", "postgres", "-d", database, "-Atc", "SELECT id FROM events ORDER BY id",
    )  # fmt: skip
    return [int(line) for line in out.split()]


def restore(
    services: Services, database: str, target: datetime | None, tmp_path: Path, major: int
) -> list[int]:
    # One WAL file a page: every restore crosses pages, as a busy week's does.
    pages = plan_pages(lambda cursor: plan_json(services, database, target, cursor))
    plan = next(pages)
    assert plan["server_major"] == major
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"pitr-{os.getpid()}-{time.monotonic_ns()}"
    work.mkdir(mode=0o755)
    cluster = restore_cluster(
        plan, work / "data", install=server_binaries(major), more=pages, progress=lambda _: None
    )
    try:
        return restored_rows(cluster, plan["source_database"])
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def slot_of(services: Services, database: str) -> str:
    """The replication slot continuous backups of `database` reserve on its server."""
    state = services.pitr.get_state(database)
    assert state is not None and state.slot is not None
    return state.replication_slot


def enable(services: Services, database: str) -> None:
    pitr.enable_pitr(services, database, PitrSettings(enabled=True))


def base_backup_requests(services: Services) -> list[BackupRequest]:
    """The base backups asked of the runner since the last look."""
    assert isinstance(services.runner, RecordingRunner)
    return services.runner.take_base_backup_requests()


def run_base_backups(services: Services) -> list[BaseBackup]:
    """Take the base backups asked of the runner, as the backup function does."""
    stored = []
    for request in base_backup_requests(services):
        result = pitr.run_base_backup(services, request, seconds_left=600, runner="lambda")
        assert result is not None and result.status == "done", result
        assert result.base is not None
        stored.append(result.base)
    return stored


def manifest_wal_range(aws: AwsStack, base: BaseBackup) -> tuple[int, int]:
    """Start-LSN and End-LSN of the backup_manifest inside the stored tar."""
    body = aws.s3.get_object(Bucket=aws.settings.bucket_name, Key=base.object_key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
        member = tar.extractfile("backup_manifest")
        assert member is not None
        (wal_range,) = json.load(member)["WAL-Ranges"]
    return lsn.parse_lsn(wal_range["Start-LSN"]), lsn.parse_lsn(wal_range["End-LSN"])


def test_restore_between_commits_and_to_latest(
    services: Services,
    aws: AwsStack,
    source: EmbeddedPostgres,
    tmp_path: Path,
    lambda_context: LambdaContext,
) -> None:
    name = "shop"
    register(services, source, name)
    enable(services, name)
    # Enabling asked the backups' runner for the first base backup; while it is on its
    # way the capture asks for no other.
    (request,) = base_backup_requests(services)
    assert request.database == name and request.kind == "base"
    first = pitr.capture(services, name, seconds_left=600)
    assert first.base_backup is None and not base_backup_requests(services)
    # The backup function's handler takes it with its own deadline.
    answer = load_function("backup").handler(request.model_dump(mode="json"), lambda_context)
    assert answer == {"backup_id": request.backup_id, "kind": "base", "status": "done"}
    (base,) = services.pitr.base_backups(name)
    assert (base.id, base.runner) == (request.backup_id, "lambda")
    assert services.pitr.base_backup_run(name) is None
    # Its exact WAL range, as its backup_manifest says.
    assert manifest_wal_range(aws, base) == (base.start_lsn, base.end_lsn)

    times = [commit_row(source, name, 1)]
    time.sleep(1.1)
    pitr.capture(services, name, seconds_left=600)
    times.append(commit_row(source, name, 2))
    # Enough WAL to fill a segment, so complete segments and a partial both exist.
    source.psql("CREATE TABLE filler AS SELECT generate_series(1, 300000) AS n", name)
    time.sleep(1.1)
    times.append(commit_row(source, name, 3))
    report = pitr.capture(services, name, seconds_left=600)
    assert report.segments, "a complete segment was archived"
    time.sleep(1.1)
    times.append(commit_row(source, name, 4))  # only ever in a partial segment
    report = pitr.capture(services, name, seconds_left=600)
    assert report.partial is not None and not report.segments

    major = int(source.psql("SHOW server_version_num")) // 10000
    between = times[1] + (times[2] - times[1]) / 2
    assert restore(services, name, between, tmp_path, major) == [1, 2]
    assert restore(services, name, None, tmp_path, major) == [1, 2, 3, 4]


def test_refusals_name_the_cause(services: Services, aws: AwsStack) -> None:
    server = start_server("18", extra_conf="wal_level = minimal\nmax_wal_senders = 0\n")
    try:
        register(services, server, "minimal")
        with pytest.raises(ReplicationRefused, match="wal_level = minimal") as low:
            enable(services, "minimal")
        assert low.value.code == "wal_level_too_low"
    finally:
        server.destroy()

    server = start_server("18")
    try:
        register(services, server, "norights")
        server.psql("CREATE ROLE app LOGIN PASSWORD 'secret-pw'")
        services.secrets.put(
            "norights",
            ConnectionInfo(url=f"postgresql://app:secret-pw@127.0.0.1:{server.port}/norights"),
        )
        with pytest.raises(ReplicationRefused, match="REPLICATION") as refused:
            enable(services, "norights")
        assert refused.value.code == "replication_not_permitted"
        assert "secret-pw" not in refused.value.message
        assert services.pitr.get_state("norights") is None
    finally:
        server.destroy()


def archive_one_commit(services: Services, server: EmbeddedPostgres, name: str) -> None:
    """A database with continuous backups: its base backup, then one commit archived."""
    register(services, server, name)
    enable(services, name)
    assert len(run_base_backups(services)) == 1
    pitr.capture(services, name, seconds_left=600)
    commit_row(server, name, 1)
    pitr.capture(services, name, seconds_left=600)


def test_window_refuses_times_outside(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres
) -> None:
    archive_one_commit(services, server18, "win")
    window = pitr.recovery_window_of(services, "win")
    assert window.earliest is not None and window.latest is not None
    for outside in (window.earliest - timedelta(seconds=1), window.latest + timedelta(1)):
        with pytest.raises(OutsideRecoveryWindow):
            pitr.plan_restore(services, "win", outside)
    assert lsn.format_lsn(lsn.parse_lsn("1/A0")) == "1/A0"


def test_a_corrupt_wal_file_stops_the_restore(services: Services, aws: AwsStack) -> None:
    server = start_server("18")
    try:
        archive_one_commit(services, server, "bad")
    finally:
        server.destroy()
    # One WAL file rewritten in the bucket after it was archived, by someone who can
    # write objects: same size, and the object's own checksum rewritten to match.
    bucket = aws.settings.bucket_name
    key = next(k for k in aws.object_keys() if k.endswith(".gz") and "/wal/" in k)
    body = bytearray(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    forged = aws.s3.head_object(Bucket=bucket, Key=key)["Metadata"]
    forged["sha256"] = hashlib.sha256(body).hexdigest()
    aws.s3.put_object(Bucket=bucket, Key=key, Body=bytes(body), Metadata=forged)

    pages = plan_pages(lambda cursor: plan_json(services, "bad", None, cursor))
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"pitr-{os.getpid()}-{time.monotonic_ns()}"
    work.mkdir(mode=0o755)
    try:
        with pytest.raises(ClusterFailed, match=r"checksum mismatch \(the download is corrupt\)"):
            restore_cluster(
                next(pages), work / "data", install=server_binaries(18), more=pages,
                progress=lambda _: None,
            )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def shared18() -> Iterator[EmbeddedPostgres]:
    """One server 18 for the tests that do not break theirs."""
    server = start_server("18")
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def server18(shared18: EmbeddedPostgres) -> Iterator[EmbeddedPostgres]:
    """The module's server 18, as good as fresh: what a test leaves on it (slots, its
    databases, roles) is dropped after it."""
    yield shared18
    shared18.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")
    databases = shared18.psql(
        "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'"
    )
    for database in databases.split():
        shared18.psql(f'DROP DATABASE "{database}" WITH (FORCE)')
    for role in shared18.psql("SELECT rolname FROM pg_roles WHERE oid >= 16384").split():
        shared18.psql(f'DROP ROLE "{role}"')


class Killed(BaseException):
    """Stands for the function dying: nothing after it runs (not even `except Exception`)."""


def test_killed_after_upload_before_acknowledging_resends_without_gap(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "killed"
    url = register(services, server18, name)
    enable(services, name)
    run_base_backups(services)
    pitr.capture(services, name, seconds_left=600)
    commit_row(server18, name, 1)
    server18.psql("CREATE TABLE filler AS SELECT generate_series(1, 300000) AS n", name)
    commit_row(server18, name, 2)
    chain_before = services.pitr.get_chain(name, services.pitr.get_state(name).chain_id)  # type: ignore[arg-type]

    stored: list[str] = []
    put_chain = services.pitr.put_chain

    def die_after_upload(chain: Any) -> None:
        if chain.position > chain_before.position:  # a complete segment was just uploaded
            stored.append(
                lsn.segment_name(chain.timeline, chain_before.position, chain.segment_size)
            )
            raise Killed()
        put_chain(chain)

    monkeypatch.setattr(services.pitr, "put_chain", die_after_upload)
    with pytest.raises(Killed):
        pitr.capture(services, name, seconds_left=600)
    monkeypatch.undo()
    key = chain_before.wal_prefix() + stored[0] + ".gz"
    assert key in aws.object_keys(), "the segment was uploaded"
    slot = slots.slot_restart_lsn(url, slot_of(services, name))
    assert slot <= chain_before.position + chain_before.segment_size - 1, "not acknowledged"

    report = pitr.capture(services, name, seconds_left=600)
    assert stored[0] in report.segments, "the next run re-sends the segment"
    assert slots.slot_restart_lsn(url, slot_of(services, name)) > chain_before.position
    assert restore(services, name, None, Path(), 18) == [1, 2]


def test_killed_before_upload_the_slot_keeps_the_wal(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "unstored"
    url = register(services, server18, name)
    enable(services, name)
    run_base_backups(services)
    pitr.capture(services, name, seconds_left=600)
    chain = services.pitr.get_chain(name, services.pitr.get_state(name).chain_id)  # type: ignore[arg-type]
    server18.psql("CREATE TABLE filler AS SELECT generate_series(1, 600000) AS n", name)
    commit_row(server18, name, 1)

    def die(*_: Any, **__: Any) -> None:
        raise Killed()

    monkeypatch.setattr(services.archives, "put_bytes", die)
    with pytest.raises(Killed):
        pitr.capture(services, name, seconds_left=600)
    monkeypatch.undo()
    restart = slots.slot_restart_lsn(url, slot_of(services, name))
    assert restart - restart % chain.segment_size <= chain.position, "the slot still holds it"
    server18.psql("CHECKPOINT")
    report = pitr.capture(services, name, seconds_left=600)
    assert report.outcome == "captured" and report.segments
    assert restore(services, name, None, Path(), 18) == [1]


def test_two_captures_at_once_one_works_the_other_leaves(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "racing"
    register(services, server18, name)
    enable(services, name)
    pitr.capture(services, name, seconds_left=600)
    commit_row(server18, name, 1)

    uploading, proceed = threading.Event(), threading.Event()
    put_bytes = services.archives.put_bytes

    def slow_put(*args: Any, **kwargs: Any) -> None:
        uploading.set()
        proceed.wait(30)
        put_bytes(*args, **kwargs)

    monkeypatch.setattr(services.archives, "put_bytes", slow_put)
    reports: list[pitr.CaptureReport] = []
    first = threading.Thread(
        target=lambda: reports.append(pitr.capture(services, name, seconds_left=600))
    )
    first.start()
    assert uploading.wait(30)
    chain_id = services.pitr.get_state(name).chain_id  # type: ignore[union-attr]
    before = services.pitr.get_chain(name, chain_id)  # type: ignore[arg-type]
    second = pitr.capture(services, name, seconds_left=600)
    assert second.outcome == "busy"
    assert services.pitr.get_chain(name, chain_id) == before  # type: ignore[arg-type]
    proceed.set()
    first.join(60)
    assert reports[0].outcome == "captured" and reports[0].partial is not None


def test_one_base_backup_at_a_time_and_a_stuck_one_is_given_up(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "single"
    register(services, server18, name)
    enable(services, name)
    (first,) = base_backup_requests(services)
    state = services.pitr.get_state(name)
    assert state is not None and state.chain_id is not None
    chain_id = state.chain_id
    # On its way: neither the capture nor another request starts a second one.
    assert pitr.capture(services, name, seconds_left=600).base_backup is None
    assert pitr.request_base_backup(services, name, chain_id) is None
    assert not base_backup_requests(services)

    # Two due at once, asked for by two callers that both read "none on its way" (as
    # concurrent captures and enabling may): the conditional write lets one start.
    result = pitr.run_base_backup(services, first, seconds_left=600, runner="lambda")
    assert result is not None and result.status == "done"
    second_id = pitr.request_base_backup(services, name, chain_id)
    assert second_id is not None
    monkeypatch.setattr(services.pitr, "base_backup_run", lambda database: None)
    assert pitr.request_base_backup(services, name, chain_id) is None
    monkeypatch.undo()
    (second,) = base_backup_requests(services)
    assert second.backup_id == second_id

    # Never started by its runner (the invocation was lost): given up after the grace.
    real_now = services.clock()
    services.clock = lambda: real_now + timedelta(minutes=31)
    third_id = pitr.request_base_backup(services, name, chain_id)
    assert third_id is not None and third_id != second.backup_id
    (third,) = base_backup_requests(services)
    assert third.backup_id == third_id
    # The lost invocation arriving late does nothing: it is not the scheduled run any more.
    assert pitr.run_base_backup(services, second, seconds_left=600, runner="lambda") is None

    # Started, then killed at its deadline without a word: given up once past it.
    services.clock = lambda: real_now + timedelta(minutes=32)
    run = services.pitr.start_base_backup_run(
        name, third_id, services.clock(), runner="lambda",
        deadline_at=services.clock() + timedelta(minutes=15),
    )  # fmt: skip
    assert run is not None and run.status == "running"
    assert pitr.request_base_backup(services, name, chain_id) is None, "not past its deadline"
    services.clock = lambda: real_now + timedelta(minutes=32 + 15 + 6)
    assert pitr.request_base_backup(services, name, chain_id) is not None
    (fourth,) = base_backup_requests(services)
    assert fourth.backup_id != third_id
    assert [b.id for b in services.pitr.base_backups(name)] == [first.backup_id]
    keys = aws.object_keys()
    for given_up in (second, third):
        assert not [k for k in keys if given_up.backup_id in k]


def test_a_failed_base_backup_is_recorded_and_leaves_nothing(
    api: Api, services: Services, server18: EmbeddedPostgres
) -> None:
    name = "failing"
    url = register(services, server18, name)
    enable(services, name)
    (request,) = base_backup_requests(services)
    services.secrets.put_replication_url(
        name, "postgresql://postgres:s3cret-pw@127.0.0.1:1/failing"
    )
    result = pitr.run_base_backup(services, request, seconds_left=600, runner="lambda")
    assert result is not None and result.status == "error"
    assert result.error and "s3cret-pw" not in result.error
    view = api.call("api-get-pitr", path=f"/v1/databases/{name}/pitr").body
    assert view["base_backups"] == [] and view["base_backup_in_progress"] is None
    assert view["last_base_backup_error"] == result.error
    assert not [k for k in api.aws.object_keys() if "/base/" in k]
    # Not asked for again at once (a server that refuses would get one try a minute).
    services.secrets.put_replication_url(name, url)
    assert pitr.capture(services, name, seconds_left=600).base_backup is None


def test_invalidated_slot_breaks_the_chain_and_a_new_one_restores(
    services: Services, aws: AwsStack
) -> None:
    server = start_server("18", extra_conf="max_slot_wal_keep_size = 48MB\nmax_wal_size = 32MB\n")
    try:
        name = "lossy"
        register(services, server, name)
        enable(services, name)
        run_base_backups(services)
        pitr.capture(services, name, seconds_left=600)
        old_chain = services.pitr.get_state(name).chain_id  # type: ignore[union-attr]
        for _ in range(6):
            server.psql("CREATE TABLE IF NOT EXISTS burst AS SELECT 1 AS n", name)
            server.psql("INSERT INTO burst SELECT generate_series(1, 400000)", name)
            server.psql("SELECT pg_switch_wal(); CHECKPOINT")
        assert server.psql("SELECT wal_status FROM pg_replication_slots") == "lost"
        aws.received_events()  # drop earlier ones

        report = pitr.capture(services, name, seconds_left=600)
        assert report.outcome == "broken" and "invalidated" in (report.broken_reason or "")
        events = [e for e in aws.received_events() if e["detail-type"] == "PITR Broken"]
        assert [e["detail"]["chain_id"] for e in events] == [old_chain]
        state = services.pitr.get_state(name)
        assert state is not None and state.chain_id != old_chain and state.status == "broken"
        # The new chain starts with a base backup, asked of the runner.
        (new_base,) = run_base_backups(services)
        assert new_base.id == report.base_backup and new_base.chain_id == state.chain_id
        state = services.pitr.get_state(name)
        assert state is not None and state.status == "ok" and state.broken_reason is None
        assert services.pitr.get_chain(name, old_chain).broken_reason

        commit_row(server, name, 7)
        pitr.capture(services, name, seconds_left=600)
        assert restore(services, name, None, Path(), 18) == [7]
    finally:
        server.destroy()


def test_retention_drops_old_base_backups_and_the_wal_only_they_needed(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres
) -> None:
    name = "aging"
    register(services, server18, name)
    pitr.enable_pitr(
        services, name, PitrSettings(enabled=True, base_backup_every_days=7, window_days=7)
    )
    start = datetime.now(UTC)
    now = [start]
    services.clock = lambda: now[0]

    def capture_and_base_backups() -> None:
        pitr.capture(services, name, seconds_left=600)
        if run_base_backups(services):
            pitr.capture(services, name, seconds_left=600)  # the WAL up to its end

    def day(days: int) -> None:
        now[0] = start + timedelta(days=days)
        first = days * 100000
        server18.psql(
            f"INSERT INTO events SELECT g, 'x' FROM generate_series({first}, {first + 99999}) g",
            name,
        )
        server18.psql("SELECT pg_switch_wal()")
        capture_and_base_backups()

    capture_and_base_backups()
    day(1)
    day(8)
    bases = sorted(services.pitr.base_backups(name), key=lambda b: b.finished_at)
    assert len(bases) == 2
    assert pitr.recovery_window_of(services, name).earliest == bases[0].finished_at
    chain = services.pitr.get_chain(name, bases[0].chain_id)
    old_segments = [
        k for k in aws.object_keys()
        if k.startswith(chain.wal_prefix())
        and lsn.segment_start(k.removeprefix(chain.wal_prefix())[:24], chain.segment_size)
        + chain.segment_size <= bases[1].start_lsn
    ]  # fmt: skip
    assert old_segments

    day(16)  # the window (7 days) now starts after the second base backup
    keys = aws.object_keys()
    assert bases[0].object_key not in keys
    assert bases[1].object_key in keys
    assert not set(old_segments) & set(keys)
    assert pitr.recovery_window_of(services, name).earliest == bases[1].finished_at
    assert [b.id for b in services.pitr.base_backups(name)][:1] == [bases[1].id]


# -- the HTTP API and the capture function ---------------------------------------------------


@pytest.fixture
def api(aws: AwsStack, lambda_context: LambdaContext) -> Api:
    module = load_function("api")
    runner = RecordingRunner()
    module.services.runner = runner
    return Api(module, runner, aws, lambda_context)


def test_api_enables_reports_the_window_and_plans_restores(
    api: Api, server18: EmbeddedPostgres, lambda_context: Any, load_event: Any
) -> None:
    url = server18.create_database("shop")
    server18.psql("CREATE TABLE events (id int PRIMARY KEY, note text)", "shop")
    api.register("shop", url)
    assert api.call("api-get-pitr").body["status"] == "disabled"

    server18.psql("CREATE ROLE app LOGIN PASSWORD 'app-pw'")
    refused = api.call(
        "api-put-pitr",
        body={
            "enabled": True,
            "replication_url": f"postgresql://app:app-pw@127.0.0.1:{server18.port}/shop",
        },
    )
    assert refused.status == 422, refused.body
    assert refused.body["error"]["code"] == "replication_not_permitted"
    assert "REPLICATION" in refused.body["error"]["message"]
    assert "app-pw" not in json.dumps(refused.body)
    bad = api.call("api-put-pitr", body={"enabled": True, "window_days": 31})
    assert bad.status == 422 and bad.body["error"]["field"] == "window_days"

    answer = api.call("api-put-pitr", body=json.loads(load_event("api-put-pitr")["body"]))
    assert answer.status == 200, answer.body
    assert answer.body["enabled"] is True and answer.body["status"] == "ok"
    slots = server18.psql("SELECT slot_name, restart_lsn IS NOT NULL FROM pg_replication_slots")
    assert slots == f"{slot_of(api.services, 'shop')}|t"
    # The first base backup is on its way: asked of the backups' runner, not taken yet.
    (request,) = api.runner.take_base_backup_requests()
    pending = answer.body["base_backup_in_progress"]
    assert pending["id"] == request.backup_id and pending["status"] == "scheduled"
    assert answer.body["base_backups"] == [] and answer.body["earliest_recoverable_at"] is None

    capture = load_function("wal_capture")
    result = capture.handler(load_event("wal-capture-database"), lambda_context)
    assert result["database"] == "shop" and result["base_backup"] is None
    backup = load_function("backup")
    taken = backup.handler(request.model_dump(mode="json"), lambda_context)
    assert taken["status"] == "done"
    assert backup.handler(request.model_dump(mode="json"), lambda_context)["status"] == (
        "unchanged"  # Lambda's retry of the same request
    )
    commit_row(server18, "shop", 1)
    assert capture.handler({"database": "shop"}, lambda_context)["outcome"] == "captured"

    view = api.call("api-get-pitr").body
    assert len(view["base_backups"]) == 1 and view["lag_seconds"] is not None
    assert view["base_backups"][0]["runner"] == "lambda"
    assert view["base_backup_in_progress"] is None and view["last_base_backup_error"] is None
    earliest = datetime.fromisoformat(view["earliest_recoverable_at"].replace("Z", "+00:00"))
    latest = datetime.fromisoformat(view["latest_recoverable_at"].replace("Z", "+00:00"))
    assert earliest < latest

    too_early = to_rfc3339(earliest - timedelta(minutes=5))
    outside = api.call("api-get-pitr-restore", query={"target_time": too_early})
    assert outside.status == 422 and outside.body["error"]["code"] == "outside_recovery_window"
    plan = api.call("api-get-pitr-restore", query={"target_time": "latest"})
    assert plan.status == 200, plan.body
    assert plan.body["server_major"] == 18 and plan.body["target_time"] is None
    assert plan.body["source_database"] == "shop"
    assert plan.body["wal"] and all(f["url"].startswith("http") for f in plan.body["wal"])
    assert "password" not in json.dumps(plan.body)
    assert plan.body["wal_total"] == len(plan.body["wal"]) >= 2 and plan.body["next_cursor"] is None

    # A page at a time: the pages add up to the whole plan, in order.
    names, cursor = [], None
    while True:
        query = {"target_time": "latest", "limit": "1"} | ({"cursor": cursor} if cursor else {})
        page = api.call("api-get-pitr-restore", query=query)
        assert page.status == 200, page.body
        names += [f["name"] for f in page.body["wal"]]
        if (cursor := page.body["next_cursor"]) is None:
            break
    assert names == [f["name"] for f in plan.body["wal"]]
    base_id = plan.body["base_backup"]["id"]
    wrong = api.call("api-get-pitr-restore", query={"cursor": f"{base_id}.not-a-segment"})
    assert wrong.status == 422 and wrong.body["error"]["field"] == "cursor"
    moved = api.call("api-get-pitr-restore", query={"cursor": f"OTHERBASE.{names[0]}"})
    assert moved.status == 409 and moved.body["error"]["code"] == "recovery_window_moved"

    off = api.call("api-put-pitr", body={"enabled": False})
    assert off.status == 200 and off.body["status"] == "disabled"
    assert server18.psql("SELECT count(*) FROM pg_replication_slots") == "0"


def test_scheduled_run_starts_one_capture_per_database(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres, lambda_context: Any
) -> None:
    for name in ("one", "two", "off"):
        register(services, server18, name)
    enable(services, "one")
    enable(services, "two")
    started: list[str] = []
    services.captures.start = started.append  # type: ignore[method-assign]
    assert pitr.start_captures(services) == ["one", "two"]
    assert started == ["one", "two"]


def test_removing_the_database_drops_its_slot(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres
) -> None:
    from pgbackups.usecases.databases import remove_database

    register(services, server18, "gone")
    enable(services, "gone")
    assert server18.psql("SELECT slot_name FROM pg_replication_slots") == slot_of(services, "gone")
    remove_database(services, "gone")
    assert server18.psql("SELECT count(*) FROM pg_replication_slots") == "0"
    state = services.pitr.get_state("gone")
    assert state is not None and not state.enabled


def test_removing_a_database_whose_server_is_down_says_the_slot_is_left(
    services: Services, aws: AwsStack
) -> None:
    from pgbackups.usecases.databases import remove_database

    server = start_server("18")
    try:
        register(services, server, "unreachable")
        enable(services, "unreachable")
        aws.received_events()  # only what the removal says, below
    finally:
        server.destroy()
    remove_database(services, "unreachable")  # the removal itself goes through

    slot = slot_of(services, "unreachable")
    (event,) = [e for e in aws.received_events() if e["detail-type"] == "PITR Slot Left"]
    detail = event["detail"]
    assert (detail["database"], detail["slot"]) == ("unreachable", slot)
    assert f"cannot drop the replication slot {slot}" in detail["reason"]
    assert detail["action"] == f"SELECT pg_drop_replication_slot('{slot}');"
    assert server.password not in json.dumps(event)
    state = services.pitr.get_state("unreachable")
    assert state is not None and not state.enabled


def test_settings_wait_for_a_running_capture(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres
) -> None:
    from pgbackups.domain.errors import CaptureRunning

    register(services, server18, "held")
    enable(services, "held")
    now = datetime.now(UTC)
    assert services.pitr.acquire_lease("held", "a-capture", now, now + timedelta(minutes=5))
    with pytest.raises(CaptureRunning):
        pitr.enable_pitr(services, "held", PitrSettings(enabled=False))
    state = services.pitr.get_state("held")
    assert state is not None and state.enabled
    assert server18.psql("SELECT slot_name FROM pg_replication_slots") == slot_of(services, "held")
    services.pitr.release_lease("held", "a-capture")
    pitr.enable_pitr(services, "held", PitrSettings(enabled=False))
    assert server18.psql("SELECT count(*) FROM pg_replication_slots") == "0"


# -- the restore plan: WAL from the catalog, digests recorded at archive time -------------


def whole_plan(services: Services, database: str, target: datetime | None) -> dict[str, Any]:
    page = pitr.plan_restore(services, database, target)
    assert page.next_cursor is None
    text = json.dumps(
        pitr.restore_links(services, page),
        default=lambda v: to_rfc3339(v) if isinstance(v, datetime) else v,
    )
    result: dict[str, Any] = json.loads(text)
    return result


def archive_segments(services: Services, server: EmbeddedPostgres, name: str) -> datetime:
    """A base backup, then complete segments and a partial one archived, rows 1, 10
    and 2; a moment between rows 1 and 10."""
    register(services, server, name)
    enable(services, name)
    assert len(run_base_backups(services)) == 1
    pitr.capture(services, name, seconds_left=600)
    first = commit_row(server, name, 1)
    commit_row(server, name, 10)
    pitr.capture(services, name, seconds_left=600)
    server.psql("CREATE TABLE filler AS SELECT generate_series(1, 600000) AS n", name)
    commit_row(server, name, 2)
    pitr.capture(services, name, seconds_left=600)
    return first


def test_the_plan_gives_each_wal_file_the_digest_recorded_when_it_was_archived(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres
) -> None:
    name = "digests"
    first = archive_segments(services, server18, name)
    bucket = aws.settings.bucket_name
    stored = {}
    for key in aws.object_keys():
        if "/wal/" in key:
            body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            stored[key] = (hashlib.sha256(body).hexdigest(), len(body))
    plan = whole_plan(services, name, None)
    assert len(plan["wal"]) >= 3 and plan["wal"][-1]["partial"] is True
    for entry in plan["wal"]:
        assert set(entry) == {"name", "partial", "url", "sha256", "size"}
        # The complete file, or the newest partial one (each capture stores a new one).
        if entry["partial"]:
            key = max(k for k in stored if f"/wal/{entry['name']}." in k and "partial" in k)
        else:
            key = next(k for k in stored if k.endswith(f"/wal/{entry['name']}.gz"))
        assert (entry["sha256"], entry["size"]) == stored[key]
    state = services.pitr.get_state(name)
    assert state is not None and state.chain_id is not None
    chain = services.pitr.get_chain(name, state.chain_id)
    assert plan["end_lsn"] == lsn.format_lsn(chain.archived_lsn)
    # A time needs the WAL up to its next commit, not the partial file after it.
    early = [
        (e["name"], e["sha256"], e["partial"]) for e in whole_plan(services, name, first)["wal"]
    ]
    whole = [(e["name"], e["sha256"], e["partial"]) for e in plan["wal"]]
    assert len(early) < len(whole) and early == whole[: len(early)]
    assert restore(services, name, first, Path(), 18) == [1]

    # Whoever can write an object can rewrite its metadata too: the plan does not ask it.
    key = next(k for k in stored if not k.endswith(".partial.gz"))
    forged = gzip.compress(b"forged WAL")
    aws.s3.put_object(
        Bucket=bucket, Key=key, Body=forged,
        Metadata={"sha256": hashlib.sha256(forged).hexdigest()},
    )  # fmt: skip
    again = {e["name"]: e["sha256"] for e in whole_plan(services, name, None)["wal"]}
    assert hashlib.sha256(forged).hexdigest() not in again.values()
    # Nor does a key someone added under the chain's WAL reach a client.
    aws.s3.put_object(Bucket=bucket, Key=chain.wal_prefix() + "/tmp/pwn0000000100000099.gz")
    names = [e["name"] for e in whole_plan(services, name, None)["wal"]]
    assert names == list(again) and all(re.fullmatch("[0-9A-F]{24}", n) for n in names)


def test_a_hole_in_the_wal_is_refused_before_anything_is_downloaded(
    api: Api, services: Services, server18: EmbeddedPostgres
) -> None:
    name = "holed"
    archive_segments(services, server18, name)
    files = [e["name"] for e in whole_plan(services, name, None)["wal"]]
    chain_id = services.pitr.get_state(name).chain_id  # type: ignore[union-attr]
    table = api.aws.settings.table_name
    api.aws.dynamodb.delete_item(
        TableName=table,
        Key={"pk": {"S": f"DATABASE#{name}"}, "sk": {"S": f"PITRWAL#{chain_id}#{files[1]}"}},
    )
    with pytest.raises(WalMissing, match=files[1]):
        pitr.plan_restore(services, name, None)
    answer = api.call("api-get-pitr-restore", path=f"/v1/databases/{name}/pitr/restore")
    assert answer.status == 409 and answer.body["error"]["code"] == "wal_missing"
    assert files[1] in answer.body["error"]["message"]

    # A chain archived before WAL files were recorded has none: no plan, no listing instead.
    for file in files:
        api.aws.dynamodb.delete_item(
            TableName=table,
            Key={"pk": {"S": f"DATABASE#{name}"}, "sk": {"S": f"PITRWAL#{chain_id}#{file}"}},
        )
    with pytest.raises(WalMissing, match="recorded"):
        pitr.plan_restore(services, name, None)


def test_wal_the_capture_cannot_decode_breaks_the_chain_with_the_reason(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "garbled"
    archive_one_commit(services, server18, name)
    old_chain = services.pitr.get_state(name).chain_id  # type: ignore[union-attr]
    commit_row(server18, name, 2)

    def malformed(chunks: object, start_lsn: int) -> list[datetime]:
        # What the decoder says of a crafted record (DATA_LONG longer than the record).
        raise wal.MalformedWal("a record's main data is longer than the record")

    monkeypatch.setattr(records, "commit_times", malformed)
    report = pitr.capture(services, name, seconds_left=600)
    assert report.outcome == "broken", report
    assert "cannot be decoded" in (report.broken_reason or "")
    state = services.pitr.get_state(name)
    assert state is not None and state.status == "broken" and state.chain_id != old_chain
    assert state.broken_reason == report.broken_reason
    monkeypatch.undo()
    # The new chain goes on (its base backup was asked for), no retry of the old one.
    assert pitr.capture(services, name, seconds_left=600).outcome == "captured"
    assert services.pitr.get_state(name).chain_id == state.chain_id  # type: ignore[union-attr]


def test_databases_whose_names_meet_in_a_slot_name_keep_their_own_slots(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres
) -> None:
    from pgbackups.usecases.databases import remove_database

    # `-` and `_` meet in a slot name; PostgreSQL cuts names to 63 characters.
    names = ["col-x", "col_x", "a" * 62 + "1", "a" * 62 + "2"]
    for name in names:
        register(services, server18, name)
        enable(services, name)
    slots = {}
    for name in names:
        state = services.pitr.get_state(name)
        assert state is not None
        slots[name] = state.replication_slot
    on_server = set(server18.psql("SELECT slot_name FROM pg_replication_slots").split())
    assert on_server == set(slots.values()) and len(on_server) == len(names)
    assert all(len(slot) <= 63 for slot in on_server)
    for name in names:
        assert pitr.capture(services, name, seconds_left=600).outcome in ("captured", "idle")

    remove_database(services, "col-x")
    remove_database(services, names[2])
    on_server = set(server18.psql("SELECT slot_name FROM pg_replication_slots").split())
    assert on_server == {slots["col_x"], slots[names[3]]}
    for name in ("col_x", names[3]):
        commit_row(server18, name, 1)
        report = pitr.capture(services, name, seconds_left=600)
        assert report.outcome == "captured", report
        assert services.pitr.get_state(name).status == "ok"  # type: ignore[union-attr]


def test_settings_changed_during_a_capture_are_kept(
    api: Api, services: Services, server18: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "busy"
    archive_one_commit(services, server18, name)
    url = server18.url(name)
    old_chain = services.pitr.get_state(name).chain_id  # type: ignore[union-attr]
    # The slot is dropped behind our back: the next capture breaks the chain and starts
    # a new one, writing the state meanwhile.
    slots.drop_slot(url, slot_of(services, name))
    checking, proceed = threading.Event(), threading.Event()
    slot_restart_lsn = slots.slot_restart_lsn

    def slow_check(*args: Any) -> int:
        checking.set()
        proceed.wait(30)
        return slot_restart_lsn(*args)

    monkeypatch.setattr(slots, "slot_restart_lsn", slow_check)
    reports: list[pitr.CaptureReport] = []
    capture = threading.Thread(
        target=lambda: reports.append(pitr.capture(services, name, seconds_left=600))
    )
    capture.start()
    try:
        assert checking.wait(30)
        changes = {"enabled": True, "base_backup_every_days": 3, "window_days": 14}
        answer = api.call("api-put-pitr", path=f"/v1/databases/{name}/pitr", body=changes)
    finally:
        proceed.set()
        capture.join(60)
    monkeypatch.undo()
    assert reports and reports[0].outcome == "broken", reports
    view = api.call("api-get-pitr", path=f"/v1/databases/{name}/pitr").body
    if answer.status == 409:  # refused while the capture held the lease: nothing changed
        assert answer.body["error"]["code"] == "capture_running"
        assert (view["base_backup_every_days"], view["window_days"]) == (7, 7)
    else:  # it landed: the capture does not write the old settings back
        assert answer.status == 200, answer.body
        assert (view["base_backup_every_days"], view["window_days"]) == (3, 14)
    assert view["enabled"] is True and view["status"] == "broken"
    state = services.pitr.get_state(name)
    assert state is not None and state.chain_id not in (None, old_chain)


def test_a_plans_partial_file_keeps_its_bytes_while_the_capture_goes_on(
    services: Services, aws: AwsStack, server18: EmbeddedPostgres
) -> None:
    name = "moving"
    archive_one_commit(services, server18, name)
    plan = whole_plan(services, name, None)
    partial = plan["wal"][-1]
    assert partial["partial"] is True
    commit_row(server18, name, 2)
    report = pitr.capture(services, name, seconds_left=600)
    assert report.partial == partial["name"] and not report.segments  # stored again

    with urllib.request.urlopen(partial["url"]) as answer:  # noqa: S310 (moto's URL)
        body = answer.read()
    assert (hashlib.sha256(body).hexdigest(), len(body)) == (partial["sha256"], partial["size"])
    newer = whole_plan(services, name, None)["wal"][-1]
    assert newer["name"] == partial["name"] and newer["sha256"] != partial["sha256"]

    # Once no plan's URL can name it any more, the replaced file goes; the current stays.
    # (The server may log a record of its own meanwhile, e.g. its running transactions
    # every 15 s: the capture then stores the partial file once more.)
    partial_keys = [k for k in aws.object_keys() if k.endswith(".partial.gz")]
    assert len(partial_keys) >= 2
    real_now = services.clock()
    services.clock = lambda: real_now + timedelta(hours=1, minutes=1)
    pitr.capture(services, name, seconds_left=600)
    (kept,) = [k for k in aws.object_keys() if k.endswith(".partial.gz")]
    assert kept in partial_keys
    assert restore(services, name, None, Path(), 18) == [1, 2]
