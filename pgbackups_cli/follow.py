"""Waiting for a backup, a restore or a drill to finish: the one loop the CLI, the demo and the
tests share, and the commands' way of following a run with a spinner."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pgbackups_cli.client import ApiClient, database_path
from pgbackups_cli.output import Interrupted, stderr_console

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


def follow_run(
    client: ApiClient,
    path: str,
    kind: str,
    *,
    spinner: str,
    status: Callable[[dict[str, Any], float], str],
    check: str,
    going_on: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """`wait_for_run` behind a spinner on standard error: `spinner` at first, then
    `status(run, seconds since the start)` at each poll. Ctrl-C stops following, not
    the run: Interrupted, saying that it (`going_on`, by default "the <kind>") goes on
    and that `check` shows it."""
    started = time.monotonic()
    try:
        with stderr_console(quiet=quiet).status(spinner) as shown:

            def show(current: dict[str, Any]) -> None:
                shown.update(status(current, time.monotonic() - started))

            return wait_for_run(client, path, kind, on_poll=show)
    except KeyboardInterrupt:
        going_on = going_on or f"the {kind}"
        raise Interrupted(
            f"Stopped following the {kind}; {going_on} goes on. Check it with {check}."
        ) from None
