"""Backups that outgrow Lambda, on the local stack: `auto` moves them to the Fargate
runner, whose RunTask the stack runs as the template's container command in a
subprocess (the bootstrap downloads and unpacks the built function and layers).

The Lambda limit is lowered to 20 s for the stack (`--parameter`), and the
database "takes longer" because a session holds a lock pg_dump must wait for.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
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
from tests.e2e.test_local_stack import new_database, register

pytestmark = pytest.mark.e2e

LAMBDA_LIMIT_SECONDS = 20


@pytest.fixture(scope="module")
def short_lambda_stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    stack = start_stack(
        tmp_path_factory.mktemp("fargate-stack"),
        "--parameter",
        f"BackupTimeoutSeconds={LAMBDA_LIMIT_SECONDS}",
    )
    try:
        yield stack
    finally:
        code = stack.stop()
        assert code == 0, stack.log()[-3000:]


def backup_of(stack: RunningStack, name: str, backup_id: str) -> dict[str, Any]:
    response = stack.api().get(f"{stack.api_url}/v1/databases/{name}/backups/{backup_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def dispatch_json(stack: RunningStack, at: datetime) -> dict[str, Any]:
    """`pgbackups local dispatch --json`: the dispatcher's answer (scheduled, reaped, pruned)."""
    result = subprocess.run(
        pgbackups_command(
            "local", "dispatch", "--json", "--at", at.isoformat(),
            "--state-dir", str(stack.state_dir),
        ),
        capture_output=True, text=True, check=False, env=stack_environment(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout))


def trigger(stack: RunningStack, name: str) -> str:
    response = stack.api().post(f"{stack.api_url}/v1/databases/{name}/backups")
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_auto_moves_a_long_backup_to_fargate_and_the_reaper_leaves_it_alone(
    short_lambda_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    stack = short_lambda_stack
    name, url = new_database(postgres, rows=5000)
    assert register(stack, name, url)["runner"] == "auto"
    blocker = psycopg2.connect(url)
    try:
        # pg_dump waits for this lock: the database "takes longer" than Lambda allows.
        with blocker.cursor() as cursor:
            cursor.execute("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE")

        first = wait_for_backup(stack, name, trigger(stack, name), timeout=60)
        assert first["status"] == "error" and first["error"].startswith("timed out"), first
        assert first["runner"] == "lambda"

        second_id = trigger(stack, name)
        deadline = time.monotonic() + 90
        while (second := backup_of(stack, name, second_id))["status"] == "scheduled":
            assert time.monotonic() < deadline, "the Fargate task never started the backup"
            time.sleep(0.2)
        assert second["status"] == "running" and second["runner"] == "fargate", second
        started = datetime.fromisoformat(second["started_at"])
        deadline_at = datetime.fromisoformat(second["deadline_at"])
        # The task's own deadline (BackupTaskTimeoutSeconds, 6 h), not Lambda's 20 s.
        assert deadline_at - started > timedelta(hours=5)

        # Past the Lambda limit, the hourly dispatcher runs: it must not reap the task's backup.
        while datetime.now(UTC) < started + timedelta(seconds=LAMBDA_LIMIT_SECONDS + 5):
            time.sleep(0.5)
        report = dispatch_json(stack, datetime.now(UTC))
        assert second_id not in report["reaped"], report
        assert backup_of(stack, name, second_id)["status"] == "running"
    finally:
        blocker.rollback()
        blocker.close()

    done = wait_for_backup(stack, name, second_id, timeout=120)
    assert done["status"] == "done" and done["runner"] == "fargate", done
    link = stack.api().get(f"{stack.api_url}/v1/databases/{name}/backups/{second_id}/archive")
    assert link.status_code == 200, link.text
    archive = requests.get(link.json()["download_url"], timeout=60).content
    assert archive.startswith(b"PGDMP")
    assert hashlib.sha256(archive).hexdigest() == done["sha256"] == link.json()["sha256"]
    assert "ECS RunTask: started" in stack.log()
