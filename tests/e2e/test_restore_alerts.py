"""Alerts for restores through the local stack, as a person receives them: a restore run
by the stack that fails raises one `restore failed` message on the chat webhook (a small
HTTP receiver of this test, given with `pgbackups local --alert-webhook`), and the next
restore that succeeds clears it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pgbackups_cli.client import ApiClient
from pgbackups_cli.follow import wait_for_run
from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import RunningStack, start_stack
from tests.e2e.test_alerts import backup, register, webhook
from tests.integration.test_alert_channels import Receiver

pytestmark = pytest.mark.e2e

__all__ = ["webhook"]  # test_alerts.py's receiver, shared

WAIT_SECONDS = 60
NAME = "restore_alerts"


@pytest.fixture(scope="module")
def stack(webhook: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    stack = start_stack(
        tmp_path_factory.mktemp("restore-alerts-stack"),
        "--alert-webhook", webhook.url, "--backup-lock", "off",
    )  # fmt: skip
    try:
        yield stack
    finally:
        assert stack.stop() == 0, stack.log()[-3000:]


def backed_up(stack: RunningStack, postgres: EmbeddedPostgres) -> None:
    """NAME registered (its daily backup half a day away) with one good backup."""
    register(stack, postgres, NAME)
    assert backup(stack, NAME)["status"] == "done"


def restore(stack: RunningStack, target_url: str) -> dict[str, Any]:
    """The newest backup restored by the stack into `target_url`, once it ended."""
    response = stack.api().post(
        f"{stack.api_url}/v1/databases/{NAME}/restores",
        json={"backup_id": "latest", "target_url": target_url},
    )
    assert response.status_code == 202, response.text
    client = ApiClient(stack.api_url, str(stack.info["token"]))
    path = f"/v1/databases/{NAME}/restores/{response.json()['id']}"
    return wait_for_run(client, path, "restore", timeout=WAIT_SECONDS, poll_seconds=0.2)


def messages(webhook: Receiver, count: int) -> list[dict[str, Any]]:
    """The webhook's messages about NAME once there are `count` (or the deadline passed)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = [d["body"] for d in webhook.received if d["body"]["pgbackups"]["database"] == NAME]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_failed_restore_alerts_once_and_the_next_good_one_clears_it(
    stack: RunningStack, webhook: Receiver, postgres: EmbeddedPostgres
) -> None:
    backed_up(stack, postgres)
    # A role that may log in everywhere but create tables only in the database it owns
    # (since PostgreSQL 15 only a database's owner creates in its public schema).
    password = secrets.token_urlsafe(12)
    postgres.psql(f"CREATE ROLE restorer LOGIN PASSWORD '{password}'")
    postgres.create_database("restore_denied")
    postgres.psql("CREATE DATABASE restore_allowed OWNER restorer")

    def target(database: str) -> str:
        return f"postgresql://restorer:{password}@{postgres.host}:{postgres.port}/{database}"

    failed = restore(stack, target("restore_denied"))
    assert failed["status"] == "error"
    [alert] = messages(webhook, 1)
    print("webhook message (raised):\n" + alert["text"])

    assert alert["pgbackups"] == {
        "database": NAME,
        "alert": "raised",
        "status": "warning",
        "subject": f"[pgbackups] {NAME}: restore failed",
    }
    assert alert["text"].startswith(f"pgbackups: the database {NAME} needs attention.\n\nSince ")
    assert (
        f"The last restore (into {postgres.host}:{postgres.port}/restore_denied) failed: "
        in alert["text"]
    )
    assert "permission denied for schema public" in alert["text"]
    health = stack.api().get(f"{stack.api_url}/v1/databases/{NAME}").json()["health"]
    assert [reason["code"] for reason in health["reasons"]] == ["restore_failed"]

    assert restore(stack, target("restore_denied"))["status"] == "error"  # the same incident
    assert restore(stack, target("restore_allowed"))["status"] == "done"

    alert, recovery = messages(webhook, 2)
    print("webhook message (cleared):\n" + recovery["text"])
    assert recovery["pgbackups"]["alert"] == "cleared"
    assert recovery["pgbackups"]["subject"] == f"[pgbackups] {NAME}: recovered from restore failed"
    assert recovery["text"].startswith(
        f"pgbackups: the database {NAME} has recovered: restore failed (since "
    )
    time.sleep(2)  # nothing else comes
    assert len(messages(webhook, 3)) == 2
    assert password not in alert["text"] + recovery["text"] + stack.log()
