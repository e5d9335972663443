"""The Fargate task's bootstrap on what `make build` made: it downloads the built
function and layers (zipped with their modes and symlinks, as Lambda stores them),
unpacks them and takes a real backup of a real database into moto.

The task runs as on Fargate: the container command from template.yaml, in a
Python started with -S (none of this venv's packages: only what it unpacks),
with the task definition's environment and no secret in it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from pgbackups.domain.models import BackupRecord, BackupRequest, ConnectionInfo, DatabaseRecord
from pgbackups.domain.pitr import PitrSettings
from pgbackups.services import Services
from pgbackups.usecases import pitr
from pgbackups.usecases.backup import request_backup, run_backup
from pgbackups.usecases.restores import NewRestore, request_restore
from pgbackups_local.code_packages import zip_tree
from pgbackups_local.postgres import EmbeddedPostgres
from pgbackups_local.template import load_template
from tests.conftest import REGION, AwsStack, RecordingRunner

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def code_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The built function and layers as zips, served on 127.0.0.1 like presigned URLs."""
    packages = tmp_path_factory.mktemp("packages")
    for logical_id in ("BackupFunction", "SharedLayer", "PgToolsLayer"):
        assert (BUILD / logical_id).is_dir(), f"run `make build` first ({logical_id})"
        zip_tree(BUILD / logical_id, packages / f"{logical_id}.zip")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(packages)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def task_container() -> dict[str, Any]:
    (container,) = load_template()["Resources"]["BackupTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    return dict(container)


def package(code_url: str, logical_id: str) -> dict[str, str]:
    """A package as the runner passes it: its location and Lambda's CodeSha256."""
    location = f"{code_url}/{logical_id}.zip"
    with urllib.request.urlopen(location, timeout=60) as response:  # noqa: S310 (local)
        digest = hashlib.sha256(response.read()).digest()
    return {"location": location, "sha256": base64.b64encode(digest).decode()}


def task_environment(
    aws: AwsStack, code_url: str, request: dict[str, Any], task_dir: Path
) -> dict[str, str]:
    """The task definition's environment with this test's resources, plus the RunTask
    override and what ECS itself gives a task (region, credentials, the endpoint)."""
    resolved = {
        "TABLE_NAME": aws.settings.table_name,
        "BUCKET_NAME": aws.settings.bucket_name,
        "SECRET_PREFIX": aws.settings.secret_prefix,
        "EVENT_BUS_NAME": aws.settings.event_bus_name,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "DEFAULT_COMPRESSION": "zstd:1",
        "BACKUP_LOCK": "off",  # this test's bucket has no Object Lock
        "BACKUP_LOCK_DAYS": "7",
        "BACKUP_TIMEOUT_SECONDS": "900",
        "BACKUP_TASK_TIMEOUT_SECONDS": "3600",
        "BACKUP_TASK_CPU": "2048",  # 2 vCPUs: a restore downloads, then pg_restore --jobs=2
        "PGBACKUPS_TASK_DIR": str(task_dir),
        "TMPDIR": str(task_dir),
    }
    environment = {
        item["Name"]: resolved.get(item["Name"], item["Value"])
        for item in task_container()["Environment"]
    }
    assert all(isinstance(value, str) for value in environment.values()), environment
    code = {
        "function": package(code_url, "BackupFunction"),
        "layers": [package(code_url, "SharedLayer"), package(code_url, "PgToolsLayer")],
    }
    return environment | {
        "PGBACKUPS_BACKUP_REQUEST": json.dumps(request),
        "PGBACKUPS_TASK_CODE": json.dumps(code),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PATH": "/usr/bin:/bin",
    }


@dataclass(frozen=True)
class TaskRun:
    directory: Path  # where the task unpacked the code (its /var/task and /opt)
    environment: dict[str, str]
    report: dict[str, Any]  # the task's last line


def run_task(aws: AwsStack, code_server: str, request: dict[str, Any], tmp_path: Path) -> TaskRun:
    """The task definition's container, run here with this Python as Fargate runs it."""
    directory = tmp_path / "task"
    directory.mkdir()
    container = task_container()
    entry_point, *options = container["EntryPoint"]
    assert entry_point == "/var/lang/bin/python3" and options == ["-c"]
    environment = task_environment(aws, code_server, request, directory)
    result = subprocess.run(
        [sys.executable, "-S", *options, *container["Command"]],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return TaskRun(directory, environment, json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_task_unpacks_the_built_code_and_takes_a_real_backup(
    aws: AwsStack, services: Services, database_url: str, tmp_path: Path, code_server: str
) -> None:
    services.catalog.create_database(DatabaseRecord(name="shop", created_at=datetime.now(UTC)))
    services.secrets.put("shop", ConnectionInfo(url=database_url))
    record = BackupRecord.new("shop", "manual", datetime.now(UTC))
    services.catalog.create_backup(record)
    started = datetime.now(UTC)
    task = run_task(aws, code_server, {"database": "shop", "backup_id": record.id}, tmp_path)

    assert database_url not in json.dumps(task.environment)
    assert task.report == {"backup_id": record.id, "status": "done"}
    stored = services.catalog.get_backup("shop", record.id)
    assert stored.status == "done" and stored.runner == "fargate"
    assert stored.deadline_at is not None
    assert (
        started + timedelta(minutes=59)
        < stored.deadline_at
        <= started + timedelta(hours=1, minutes=1)
    )
    archive = aws.s3.get_object(Bucket=aws.settings.bucket_name, Key=stored.object_key)[
        "Body"
    ].read()
    assert archive.startswith(b"PGDMP")
    assert hashlib.sha256(archive).hexdigest() == stored.sha256 and len(archive) == stored.size
    assert services.catalog.get_database("shop").active_backup_id is None
    assert [e["detail-type"] for e in aws.received_events()] == ["Backup Succeeded"]

    # Lambda's layout, rebuilt from the zips: modes and symlinks restored.
    task_dir = task.directory
    opt = task_dir / "opt"
    pg_dump = opt / "bin" / "pg_dump"
    assert stat.S_IMODE(pg_dump.stat().st_mode) == 0o755
    libpq = opt / "lib" / "libpq.so.5"
    assert libpq.is_symlink() and os.readlink(libpq).startswith("libpq.so.5.")
    assert (task_dir / "var" / "task" / "backup_task.py").is_file()
    assert (opt / "python" / "pgbackups" / "usecases" / "backup.py").is_file()
    # The packages did hold the symlink as a symlink (not a copy of the library).
    with zipfile.ZipFile(_fetch(code_server, "PgToolsLayer.zip", tmp_path)) as package:
        link = package.getinfo("lib/libpq.so.5")
        assert stat.S_ISLNK(link.external_attr >> 16)


def _fetch(base: str, name: str, into: Path) -> Path:
    import urllib.request

    path = into / name
    with urllib.request.urlopen(f"{base}/{name}") as response:  # noqa: S310 (local)
        path.write_bytes(response.read())
    return path


def test_the_task_takes_a_continuous_backups_base_backup(
    aws: AwsStack,
    services: Services,
    postgres: EmbeddedPostgres,
    database_name: str,
    tmp_path: Path,
    code_server: str,
) -> None:
    """The same task, asked for a base backup (kind "base"), stores it as the Fargate run."""
    name = "shop"
    services.catalog.create_database(DatabaseRecord(name=name, created_at=datetime.now(UTC)))
    services.secrets.put(name, ConnectionInfo(url=postgres.create_database(database_name)))
    pitr.enable_pitr(services, name, PitrSettings(enabled=True))
    try:
        assert isinstance(services.runner, RecordingRunner)
        (request,) = services.runner.take_base_backup_requests()
        task = run_task(aws, code_server, request.model_dump(mode="json"), tmp_path)
        assert task.report == {"backup_id": request.backup_id, "status": "done"}
        (base,) = services.pitr.base_backups(name)
        assert (base.id, base.runner) == (request.backup_id, "fargate")
        assert services.pitr.base_backup_run(name) is None
        stored = aws.s3.get_object(Bucket=aws.settings.bucket_name, Key=base.object_key)
        body = stored["Body"].read()
        assert hashlib.sha256(body).hexdigest() == base.sha256 and len(body) == base.size
    finally:
        pitr.disable_pitr(services, name)  # the shared server must not keep WAL for a slot


def test_the_task_refuses_code_that_does_not_match_its_digest(
    aws: AwsStack, code_server: str, tmp_path: Path
) -> None:
    directory = tmp_path / "task"
    directory.mkdir()
    container = task_container()
    request = {"database": "shop", "backup_id": "01JBZ4X2Q6W8E0R1T2Y3V4M5N6"}
    environment = task_environment(aws, code_server, request, directory)
    code = json.loads(environment["PGBACKUPS_TASK_CODE"])
    code["layers"][1]["sha256"] = code["layers"][0]["sha256"]  # another package's digest
    environment["PGBACKUPS_TASK_CODE"] = json.dumps(code)
    result = subprocess.run(
        [sys.executable, "-S", *container["EntryPoint"][1:], *container["Command"]],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "CodeSha256" in result.stderr
    assert not (directory / "opt" / "bin" / "pg_dump").exists()


def test_the_task_runs_a_restore(
    aws: AwsStack,
    services: Services,
    postgres: EmbeddedPostgres,
    database_name: str,
    tmp_path: Path,
    code_server: str,
) -> None:
    """The same task, asked for a restore (kind "restore"), streams the archive into
    pg_restore and records the restore as the Fargate run; the target URL stays out of
    its environment and its secret is deleted."""
    source = postgres.create_database(database_name)
    postgres.psql("CREATE TABLE items AS SELECT generate_series(1, 300) AS id", database_name)
    services.catalog.create_database(DatabaseRecord(name="shop", created_at=datetime.now(UTC)))
    services.secrets.put("shop", ConnectionInfo(url=source))
    backup = request_backup(services, "shop")
    request = BackupRequest(database="shop", backup_id=backup.id)
    assert run_backup(services, request, seconds_left=600, runner="lambda") is not None
    target = postgres.create_database(f"target_{database_name}")
    restore = request_restore(services, "shop", NewRestore(target_url=target, backup_id="latest"))

    task = run_task(
        aws, code_server,
        BackupRequest(database="shop", backup_id=restore.id, kind="restore").model_dump(),
        tmp_path,
    )  # fmt: skip

    assert task.report == {"backup_id": restore.id, "status": "done"}
    assert target not in json.dumps(task.environment)
    assert postgres.password not in json.dumps(task.environment)
    stored = services.restores.get_restore("shop", restore.id)
    assert (stored.status, stored.runner) == ("done", "fargate")
    assert postgres.psql("SELECT count(*) FROM items", f"target_{database_name}") == "300"
    assert services.secrets.restore_target(restore.id) is None


def test_a_task_stopped_during_a_restore_records_it_and_deletes_its_secret(
    aws: AwsStack,
    services: Services,
    postgres: EmbeddedPostgres,
    database_name: str,
    tmp_path: Path,
    code_server: str,
) -> None:
    """ECS's SIGTERM (StopTask, a scale-in) while pg_restore works: the restore is `error`,
    says its target may be partial, and its secret is gone, before ECS's 30 s."""
    source = postgres.create_database(database_name)
    postgres.psql("CREATE TABLE items AS SELECT generate_series(1, 300) AS id", database_name)
    services.catalog.create_database(DatabaseRecord(name="shop", created_at=datetime.now(UTC)))
    services.secrets.put("shop", ConnectionInfo(url=source))
    backup = request_backup(services, "shop")
    request = BackupRequest(database="shop", backup_id=backup.id)
    assert run_backup(services, request, seconds_left=600, runner="lambda") is not None
    target_name = f"target_{database_name}"
    target = postgres.create_database(target_name)
    postgres.psql("CREATE TABLE items (id int)", target_name)
    restore = request_restore(services, "shop", NewRestore(target_url=target, backup_id="latest"))
    directory = tmp_path / "task"
    directory.mkdir()
    container = task_container()
    wanted = BackupRequest(database="shop", backup_id=restore.id, kind="restore")
    holder = psycopg2.connect(target)
    holder.cursor().execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
    try:
        task = subprocess.Popen(
            [sys.executable, "-S", *container["EntryPoint"][1:], *container["Command"]],
            env=task_environment(aws, code_server, wanted.model_dump(), directory),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # pg_restore's DROP TABLE items (--clean) waits on the lock: the task is stopped.
        for _ in range(600):
            waiting = postgres.psql(
                "SELECT count(*) FROM pg_stat_activity "
                f"WHERE datname = '{target_name}' AND wait_event_type = 'Lock'"
            )
            if waiting != "0" or task.poll() is not None:
                break
            time.sleep(0.1)
        task.send_signal(signal.SIGTERM)
        stdout, stderr = task.communicate(timeout=30)
    finally:
        holder.close()

    assert task.returncode == 1, stdout[-3000:] + stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1]) == {
        "backup_id": restore.id,
        "status": "error",
    }
    stored = services.restores.get_restore("shop", restore.id)
    assert stored.status == "error" and stored.runner == "fargate"
    assert stored.error is not None and "the task was stopped" in stored.error
    assert any("the target may be partial" in warning for warning in stored.warnings)
    assert services.secrets.restore_target(restore.id) is None
