"""A restore drill: an archive restored into a throwaway PostgreSQL server
(`pgbackups.postgres.throwaway`), then checked (`pgbackups.postgres.checks`).

The archive is untrusted, so no object of it runs as a superuser: pg_restore connects
as `DRILL_ROLE`, an unprivileged role that owns the drill's database, with `--no-owner
--no-privileges` (the archive's roles do not exist here, and an archive's SQL must not
run with more rights than the role a user would restore it as).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

from pgbackups.domain.smoke import SmokeQuery
from pgbackups.postgres.checks import (
    Check,
    TableRows,
    check_server,
    clip_detail,
    seconds_left,
)
from pgbackups.postgres.contents import archive_extensions, toc_key
from pgbackups.postgres.restore import (
    RestoreFailed,
    Target,
    list_streamed_entries,
    run_pg_restore,
)
from pgbackups.postgres.throwaway import (
    DRILL_DATABASE,
    DRILL_ROLE,
    create_database,
    server_version,
    throwaway_server,
)

if TYPE_CHECKING:
    from pgbackups.postgres.pgtools import PgTools

NO_OWNER_WARNING = (
    f"restored with --no-owner --no-privileges as the unprivileged role {DRILL_ROLE}: "
    "the archive's owners and grants are not checked (its roles do not exist on the "
    "drill's server)"
)
TRANSACTION_TIMEOUT_WARNING = (
    "the drill's PostgreSQL does not know transaction_timeout (pg_restore 18 sets it): "
    "that one error was ignored, nothing else failed"
)


class Phases:
    """A drill's phases timed end to end (`lap` closes one and opens the next), so that
    they add up to the whole drill (`total`): e.g. "contents" (the archive's table of
    contents, read from its start), "start" (initdb, start, the drill's database),
    "restore", "checks", "stop" (the server stopped, its files removed)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.began = self.mark = clock()
        self.seconds: dict[str, float] = {}

    def lap(self, name: str) -> float:
        """The seconds since the last lap (or the start), added to phase `name`."""
        now = self.clock()
        took = now - self.mark
        self.seconds[name] = self.seconds.get(name, 0.0) + took
        self.mark = now
        return took

    def total(self) -> dict[str, float]:
        """Each phase's seconds and the whole drill's (`total`: up to the last lap)."""
        return {**self.seconds, "total": self.mark - self.began}


@dataclass
class DrillOutcome:
    checks: list[Check]
    tables: list[TableRows]
    restore_seconds: float
    server_version: str
    warnings: list[str] = field(default_factory=list)
    # Seconds per phase (`Phases.total`), "total" the whole drill's.
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def drill_archive(
    tools: PgTools,
    install: Path,
    work_dir: Path,
    feed: Callable[[IO[bytes]], None],
    *,
    smoke_queries: Sequence[SmokeQuery],
    timeout: float,
    expected_objects: Iterable[str] | None = None,
    expected_rows: Sequence[TableRows] | None = None,
) -> DrillOutcome:
    """Restore the archive `feed` writes (it may be called more than once, writing the
    whole archive each time) into a throwaway server of `install`, and check it.

    `expected_objects` ("TABLE public items", as `pg_restore --list` names an entry
    without its owner) and `expected_rows` (exact counts) are what the database must
    hold besides the archive's own table of contents: e.g. a previous drill's tables,
    so that another database's archive put in this one's place is caught.
    `timeout` bounds the restore and the checks; each smoke query has its own
    `SMOKE_TIMEOUT_SECONDS`. A failed restore is a failed "restore" check; DrillFailed
    when the drill cannot run.
    """
    deadline = time.monotonic() + timeout
    phases = Phases()
    try:
        entries: list[str] | None = list_streamed_entries(tools, feed)
        unreadable = ""
    except RestoreFailed as error:
        entries, unreadable = None, str(error)
    phases.lap("contents")
    warnings = [NO_OWNER_WARNING]
    with throwaway_server(install, work_dir) as server:
        version = server_version(server)
        create_database(server, archive_extensions(entries or []))
        phases.lap("start")
        # As the unprivileged owner of the database, without the archive's owners and
        # grants (restore.RESTORE_FLAGS): see the module's docstring.
        target = Target.parse(
            f"postgresql:///{DRILL_DATABASE}?host={quote(str(server.socket_dir), safe='')}"
            f"&port={server.port}&user={DRILL_ROLE}"
        )
        try:
            outcome = run_pg_restore(
                tools, None, target, feed=feed, clean=False, timeout=seconds_left(deadline)
            )
        except RestoreFailed as error:
            restore = Check("restore", False, clip_detail(str(error)))
        else:
            restore = Check("restore", True, "pg_restore finished with no error")
            if outcome.ignored_transaction_timeout:
                warnings.append(TRANSACTION_TIMEOUT_WARNING)
        restore_seconds = phases.lap("restore")
        restore = replace(restore, seconds=restore_seconds)
        objects = [*(toc_key(entry) for entry in entries or []), *(expected_objects or ())]
        checks, tables = check_server(
            server, DRILL_DATABASE, smoke_queries=smoke_queries,
            expected_objects=[key for key in objects if key is not None],
            expected_rows=expected_rows, timeout=seconds_left(deadline),
        )  # fmt: skip
        if entries is None:
            checks = [
                replace(check, passed=False,
                        detail=clip_detail(f"the archive's table of contents: {unreadable}"))
                if check.name == "objects" else check
                for check in checks
            ]  # fmt: skip
        phases.lap("checks")
    phases.lap("stop")
    return DrillOutcome(
        checks=[restore, *checks],
        tables=tables,
        restore_seconds=restore_seconds,
        server_version=version,
        warnings=warnings,
        phases=phases.total(),
    )
