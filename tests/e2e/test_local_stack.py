"""`pgbackups local` over HTTP: register, back up, download, restore, dispatch, retention, stop."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import (
    RunningStack,
    pgbackups_command,
    stack_environment,
    start_stack,
    wait_for_backup,
)

pytestmark = pytest.mark.e2e


def new_database(postgres: EmbeddedPostgres, rows: int = 1000) -> tuple[str, str]:
    """A fresh database with a table of `rows` rows: (name, url)."""
    name = f"db_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(name)
    postgres.psql(
        "CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);"
        f"INSERT INTO items SELECT n, 'item ' || n FROM generate_series(1, {rows}) AS n;",
        name,
    )
    return name, url


def register(stack: RunningStack, name: str, url: str, **extra: Any) -> dict[str, Any]:
    response = stack.api().post(
        f"{stack.api_url}/v1/databases", json={"name": name, "url": url, **extra}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def take_backup(stack: RunningStack, name: str) -> dict[str, Any]:
    response = stack.api().post(f"{stack.api_url}/v1/databases/{name}/backups")
    assert response.status_code == 202, response.text
    backup = wait_for_backup(stack, name, response.json()["id"])
    assert backup["status"] == "done", backup
    return backup


def dispatch(stack: RunningStack, at: datetime) -> str:
    result = subprocess.run(
        pgbackups_command(
            "local", "dispatch", "--at", at.isoformat(), "--state-dir", str(stack.state_dir)
        ),
        capture_output=True,
        text=True,
        check=False,
        env=stack_environment(),
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def backups_of(stack: RunningStack, name: str) -> list[dict[str, Any]]:
    response = stack.api().get(f"{stack.api_url}/v1/databases/{name}/backups")
    assert response.status_code == 200, response.text
    return list(response.json()["backups"])


# -- the stack itself ---------------------------------------------------------------------


def test_stack_json_describes_the_running_stack(local_stack: RunningStack) -> None:
    info = local_stack.info
    assert {"api_url", "token", "aws_endpoint_url", "region", "bucket", "table", "pid"} <= set(info)
    assert info["pid"] == local_stack.process.pid
    assert local_stack.stack_file.stat().st_mode & 0o777 == 0o600
    # Generated like the template's GenerateSecretString: 48 characters, no punctuation.
    assert len(info["token"]) == 48 and info["token"].isalnum()

    assert requests.get(f"{info['api_url']}/v1/openapi.json", timeout=10).status_code == 200
    assert requests.get(f"{info['api_url']}/v1/databases", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert (
        requests.get(f"{info['api_url']}/v1/databases", headers=wrong, timeout=10).status_code
        == 403
    )
    assert local_stack.api().get(f"{info['api_url']}/v1/databases").status_code == 200

    s3 = boto3.client(
        "s3",
        endpoint_url=info["aws_endpoint_url"],
        region_name=info["region"],
        aws_access_key_id=info["aws_access_key_id"],
        aws_secret_access_key=info["aws_secret_access_key"],
    )
    # The bucket is the template's: versioned (deletions are soft) and encrypted.
    assert s3.get_bucket_versioning(Bucket=info["bucket"])["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=info["bucket"])["ServerSideEncryptionConfiguration"]
    assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_backup_over_http_downloads_an_archive_pg_restore_accepts(
    local_stack: RunningStack, postgres: EmbeddedPostgres, pgtools_dir: Path, tmp_path: Path
) -> None:
    name, url = new_database(postgres)
    register(local_stack, name, url)

    backup = take_backup(local_stack, name)
    assert backup["method"] == "manual" and backup["size"] > 0

    link = local_stack.api().get(
        f"{local_stack.api_url}/v1/databases/{name}/backups/{backup['id']}/archive"
    )
    assert link.status_code == 200, link.text
    download = requests.get(link.json()["download_url"], timeout=60)
    assert download.status_code == 200
    assert f'filename="{backup["name"]}.pgsql"' in download.headers["Content-Disposition"]
    assert hashlib.sha256(download.content).hexdigest() == backup["sha256"] == link.json()["sha256"]
    assert len(download.content) == backup["size"]

    archive = tmp_path / "backup.pgsql"
    archive.write_bytes(download.content)
    listing = subprocess.run(
        [str(pgtools_dir / "bin" / "pg_restore"), "--list", str(archive)],
        env={"LD_LIBRARY_PATH": str(pgtools_dir / "lib"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    assert "TABLE DATA public items" in listing.stdout


def test_dispatch_takes_a_periodic_backup_at_the_scheduled_hour_only(
    local_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    name, url = new_database(postgres, rows=100)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    register(
        local_stack, name, url, schedule={"enabled": True, "hour": hour.hour, "timezone": "UTC"}
    )

    # Other tests' databases keep the default schedule (01:00 Paris): look for ours only.
    other = dispatch(local_stack, hour - timedelta(hours=1))
    assert name not in other
    assert backups_of(local_stack, name) == []

    due = dispatch(local_stack, hour + timedelta(minutes=5))
    assert "periodic backup" in due and name in due, due
    (scheduled,) = backups_of(local_stack, name)
    assert f"{name} " in due and scheduled["id"] in due
    backup = wait_for_backup(local_stack, name, scheduled["id"])
    assert (backup["method"], backup["status"]) == ("periodic", "done"), backup

    # A second run in the same hour does not take a second backup.
    assert name not in dispatch(local_stack, hour + timedelta(minutes=30))
    assert len(backups_of(local_stack, name)) == 1


def test_retention_deletes_objects_and_records_together(
    local_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    name, url = new_database(postgres, rows=100)
    register(local_stack, name, url, retention={"manual": 2})
    taken = [take_backup(local_stack, name)["id"] for _ in range(3)]

    # Pruning runs right after the third backup is recorded as done.
    deadline = time.monotonic() + 30
    while len(records := backups_of(local_stack, name)) > 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {record["id"] for record in records} == set(taken[1:])

    info = local_stack.info
    s3 = boto3.client(
        "s3",
        endpoint_url=info["aws_endpoint_url"],
        region_name=info["region"],
        aws_access_key_id=info["aws_access_key_id"],
        aws_secret_access_key=info["aws_secret_access_key"],
    )
    listing = s3.list_objects_v2(Bucket=info["bucket"], Prefix=f"databases/{name}/")
    keys = {obj["Key"] for obj in listing.get("Contents", [])}
    assert keys == {f"databases/{name}/backups/{backup_id}.pgsql" for backup_id in taken[1:]}
    uploads = s3.list_multipart_uploads(Bucket=info["bucket"], Prefix=f"databases/{name}/")
    assert uploads.get("Uploads", []) == []


def test_dispatch_without_a_running_stack_says_how_to_start_one(tmp_path: Path) -> None:
    result = subprocess.run(
        pgbackups_command(
            "local", "dispatch", "--at", "2026-01-15T01:00:00Z", "--state-dir", str(tmp_path)
        ),
        capture_output=True,
        text=True,
        check=False,
        env=stack_environment(),
    )
    assert result.returncode != 0
    assert "no local stack is running" in result.stderr
    assert "pgbackups local" in result.stderr


def test_missing_pgtools_layer_is_a_clear_error(tmp_path: Path) -> None:
    env = {**stack_environment(), "PGBACKUPS_PGTOOLS_DIR": str(tmp_path / "nowhere")}
    result = subprocess.run(
        pgbackups_command("local", "--port", "0", "--state-dir", str(tmp_path / "state")),
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "make build" in result.stderr
    assert not (tmp_path / "state" / "stack.json").exists()


# -- stopping -------------------------------------------------------------------------------


def _process_tree(root: int) -> set[int]:
    """`root` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = {pid for pid, ppid in parents.items() if ppid == parent}
        frontier += list(children - tree)
        tree |= children
    return tree


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a parent that does not reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # ended meanwhile
        return b""


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_stops_everything_the_stack_started(tmp_path: Path) -> None:
    """Even with a backup stuck in pg_dump: it is stopped and the stack exits 0."""
    stack = start_stack(tmp_path, "--demo", "--demo-size-mb", "2", "--shutdown-grace", "1")
    info = stack.info
    try:
        import psycopg2

        # Hold a lock pg_dump must wait for, so the backup is still running at SIGTERM.
        blocker = psycopg2.connect(info["demo_database_url"])
        blocker.cursor().execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        response = stack.api().post(f"{stack.api_url}/v1/databases/demo/backups")
        assert response.status_code == 202, response.text
        backup_id = response.json()["id"]
        deadline = time.monotonic() + 30
        while True:
            backup = stack.api().get(f"{stack.api_url}/v1/databases/demo/backups/{backup_id}")
            if backup.json()["status"] == "running" and len(_process_tree(stack.process.pid)) > 1:
                break
            assert time.monotonic() < deadline, backup.text
            time.sleep(0.2)

        processes = _process_tree(stack.process.pid) | {info["demo_postgres_pid"]}
        ports = [
            urlsplit(info[key]).port
            for key in ("api_url", "aws_endpoint_url", "lambda_endpoint_url", "demo_database_url")
        ]
        assert all(port and _listening(port) for port in ports)
    except BaseException:
        stack.stop(signal.SIGKILL)
        raise

    code = stack.stop(signal.SIGTERM)
    with contextlib.suppress(Exception):
        blocker.close()

    log = stack.log()
    assert code == 0, log[-3000:]
    assert "Local stack stopped." in log
    assert not stack.stack_file.exists()
    assert [pid for pid in processes if _alive(pid)] == []
    assert [port for port in ports if port and _listening(port)] == []
    # The stuck backup was ended as an error, not abandoned.
    assert "stopped 1 running pg_dump" in log
    assert '"message":"backup failed"' in log
    assert os.path.exists(tmp_path / "state")  # the state dir stays; only stack.json goes


def test_moto_stops_with_a_killed_stack(tmp_path: Path) -> None:
    """moto runs in a process of its own; a stack killed outright does not leave it behind."""
    stack = start_stack(tmp_path)
    try:
        port = urlsplit(stack.info["aws_endpoint_url"]).port
        assert port and _listening(port)
        moto = [
            pid
            for pid in _process_tree(stack.process.pid) - {stack.process.pid}
            if b"pgbackups_local.moto_process" in _cmdline(pid)
        ]
        assert len(moto) == 1
    finally:
        stack.stop(signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _alive(moto[0]) or _listening(port):
        assert time.monotonic() < deadline, "moto outlived the stack"
        time.sleep(0.2)
