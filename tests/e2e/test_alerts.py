"""Alerts through the local stack, as a person receives them: a chat webhook (a small
HTTP receiver of this test, given with `pgbackups local --alert-webhook`) and the
stack's log (what the alerts topic's email subscribers get)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import (
    RunningStack,
    pgbackups_command,
    stack_environment,
    start_stack,
    wait_for_backup,
)
from tests.integration.test_alert_channels import Receiver

pytestmark = pytest.mark.e2e

WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture(scope="module")
def stack(webhook: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    stack = start_stack(tmp_path_factory.mktemp("alerts-stack"), "--alert-webhook", webhook.url)
    try:
        yield stack
    finally:
        assert stack.stop() == 0, stack.log()[-3000:]


def register(stack: RunningStack, postgres: EmbeddedPostgres, name: str) -> None:
    """A database whose daily backup is due half a day away: nothing periodic runs."""
    postgres.create_database(name)
    postgres.psql("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)", name)
    hour = (datetime.now(UTC).hour + 12) % 24
    response = stack.api().post(
        f"{stack.api_url}/v1/databases",
        json={
            "name": name,
            "url": postgres.url(name),
            "schedule": {"enabled": True, "hour": hour, "timezone": "UTC"},
        },
    )
    assert response.status_code == 201, response.text


def backup(stack: RunningStack, name: str) -> dict[str, Any]:
    response = stack.api().post(f"{stack.api_url}/v1/databases/{name}/backups")
    assert response.status_code == 202, response.text
    return wait_for_backup(stack, name, response.json()["id"])


def messages_for(webhook: Receiver, name: str, count: int) -> list[dict[str, Any]]:
    """The webhook's messages about `name` once there are `count` (or fail)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = [d["body"] for d in webhook.received if d["body"]["pgbackups"]["database"] == name]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_failing_backup_alerts_once_and_the_next_good_one_says_it_recovered(
    stack: RunningStack, webhook: Receiver, postgres: EmbeddedPostgres
) -> None:
    name = "alerts_failing"
    register(stack, postgres, name)
    postgres.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")

    failed = backup(stack, name)
    assert failed["status"] == "error"
    [alert] = messages_for(webhook, name, 1)
    print("webhook message (raised):\n" + alert["text"])

    assert alert["pgbackups"] == {
        "database": name,
        "alert": "raised",
        "status": "failing",
        "subject": f"[pgbackups] {name}: backup failed",
    }
    assert alert["text"].startswith(f"pgbackups: the database {name} is failing.\n\nSince ")
    assert "is not currently accepting connections" in alert["text"]
    assert alert["text"].endswith(f"Dashboard: {stack.api_url}/#/databases/{name}")
    health = stack.api().get(f"{stack.api_url}/v1/databases/{name}").json()["health"]
    assert health["status"] == "failing"

    assert backup(stack, name)["status"] == "error"  # the same incident: no new message
    postgres.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    assert backup(stack, name)["status"] == "done"

    alert, recovery = messages_for(webhook, name, 2)
    print("webhook message (cleared):\n" + recovery["text"])
    assert recovery["pgbackups"]["alert"] == "cleared"
    assert recovery["text"].startswith(
        f"pgbackups: the database {name} has recovered: backup failed (since "
    )
    assert "Its backups are healthy again." in recovery["text"]
    time.sleep(2)  # nothing else comes
    assert len(messages_for(webhook, name, 3)) == 2
    # The topic's messages (email) are printed in the stack's log; the URL never is.
    log = stack.log()
    print(log[log.index(f"alert: [pgbackups] {name}") :][:1500])
    assert f"alert: [pgbackups] {name}: backup failed\n    pgbackups: the database" in log
    assert f"alert: [pgbackups] {name}: recovered from backup failed" in log
    assert "secret-part" not in log


def dispatch_at(stack: RunningStack, at: datetime) -> None:
    result = subprocess.run(
        pgbackups_command(
            "local", "dispatch", "--at", at.isoformat(), "--state-dir", str(stack.state_dir)
        ),
        capture_output=True,
        text=True,
        env=stack_environment(),
        timeout=120,
        check=False,
        cwd=Path(stack.state_dir).parent,
    )
    assert result.returncode == 0, result.stderr


def test_backups_two_days_old_raise_one_stale_alert_across_hourly_runs(
    stack: RunningStack, webhook: Receiver, postgres: EmbeddedPostgres
) -> None:
    name = "alerts_stale"
    register(stack, postgres, name)
    good = backup(stack, name)
    assert good["status"] == "done"
    last_good = datetime.fromisoformat(good["created_at"])

    for hours in (49, 50, 51):  # the hour's runs, two days on
        dispatch_at(stack, last_good + timedelta(hours=hours))

    [alert] = messages_for(webhook, name, 1)
    print("webhook message (stale):\n" + alert["text"])
    assert alert["pgbackups"]["subject"] == f"[pgbackups] {name}: no recent backup"
    assert re.search(
        r"No backup has succeeded for 2 days( \d+ h)? \(the schedule allows 1 day 6 h\)\.",
        alert["text"],
    )
    time.sleep(2)
    assert len(messages_for(webhook, name, 2)) == 1
