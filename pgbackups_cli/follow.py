"""Waiting for a backup, a restore or a drill to finish: the one loop the CLI, the demo and the
tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pgbackups_cli.client import ApiClient, database_path

ACTIVE = ("scheduled", "running")
POLL_SECONDS = 1.0


class StillRunning(TimeoutError):
    """The run was still scheduled or running when the wait ran out."""

    def __init__(self, kind: str, run: dict[str, Any], waited: float) -> None:
        super().__init__(f"{kind} {run['id']} is still {run['status']} after {waited:.0f} s")
        self.run = run


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
    return wait_for_run(
        client, path, "backup", timeout=timeout, poll_seconds=poll_seconds, on_poll=on_poll
    )


def wait_for_run(
    client: ApiClient,
    path: str,
    kind: str,
    *,
    timeout: float | None = None,
    poll_seconds: float | None = None,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The run at `path` once it has ended: a backup or a restore `done` or `error`, a
    drill `passed` or `failed`."""
    started = time.monotonic()
    while True:
        run: dict[str, Any] = client.get(path)
        if on_poll is not None:
            on_poll(run)
        if run["status"] not in ACTIVE:
            return run
        waited = time.monotonic() - started
        if timeout is not None and waited > timeout:
            raise StillRunning(kind, run, waited)
        time.sleep(POLL_SECONDS if poll_seconds is None else poll_seconds)
