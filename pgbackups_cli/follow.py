"""Waiting for a backup to finish: the one loop the CLI, the demo and the tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pgbackups_cli.client import ApiClient, database_path

ACTIVE = ("scheduled", "running")
POLL_SECONDS = 1.0


class StillRunning(TimeoutError):
    """The backup was still scheduled or running when the wait ran out."""

    def __init__(self, backup: dict[str, Any], waited: float) -> None:
        super().__init__(f"backup {backup['id']} is still {backup['status']} after {waited:.0f} s")
        self.backup = backup


def wait_for_backup(
    client: ApiClient,
    database: str,
    backup_id: str,
    *,
    timeout: float | None = None,
    poll_seconds: float | None = None,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The backup once it is `done` or `error`; `on_poll` sees each state on the way."""
    path = database_path(database, "backups", backup_id)
    started = time.monotonic()
    while True:
        backup: dict[str, Any] = client.get(path)
        if on_poll is not None:
            on_poll(backup)
        if backup["status"] not in ACTIVE:
            return backup
        waited = time.monotonic() - started
        if timeout is not None and waited > timeout:
            raise StillRunning(backup, waited)
        time.sleep(POLL_SECONDS if poll_seconds is None else poll_seconds)
