"""`backups-restore`: the bundled pg_restore 18 into a target database.

The target URL is read with libpq's own parser (`pgbackups.postgres.urls`), so the
pre-flight connection and pg_restore can never read it differently. The
password is taken out and passed through PGPASSWORD: it is never on a command
line another user could read in `ps`.

pg_restore 18 starts every session with `SET transaction_timeout = 0`, which
servers before PostgreSQL 17 refuse; pg_restore carries on, restores
everything, and exits 1. That one known error is recognised and reported in a
line; any other error still fails the restore.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgbackups.postgres.dump import ARCHIVE_MAGIC, RESTORE_FLAGS
from pgbackups.postgres.pgtools import PgTools, PgToolsNotFound, locate_pgtools

if TYPE_CHECKING:
    from pgbackups.postgres.urls import Connection

CONNECT_TIMEOUT_SECONDS = 10
# The lines `pg_restore --verbose` prints as it works through the archive's entries.
_ENTRY_DONE = re.compile(r"^pg_restore: (creating|processing data for|executing) ")
_SESSION_SETUP = re.compile(r"^pg_restore: executing SELECT pg_catalog\.set_config")
_ERROR = re.compile(r"^pg_restore: error: ")
_ERRORS_IGNORED = re.compile(r"^pg_restore: warning: errors ignored on restore: (\d+)$")
_TRANSACTION_TIMEOUT = 'unrecognized configuration parameter "transaction_timeout"'


class RestoreFailed(Exception):
    pass


@dataclass(frozen=True)
class Target:
    """Where a restore goes, as libpq reads the URL (`pgbackups.postgres.urls`)."""

    url: str = field(repr=False)
    connection: Connection

    @classmethod
    def parse(cls, url: str) -> Target:
        """ValueError with the reason when `url` is not a PostgreSQL URL naming a database."""
        from pgbackups.domain.errors import ConnectionFailed
        from pgbackups.postgres.urls import connection

        try:
            found = connection(url)
        except ConnectionFailed as error:
            raise ValueError(str(error)) from None
        if not found.parameters.get("dbname"):
            raise ValueError("it names no database (postgres://user:password@host:5432/DATABASE)")
        return cls(url=url, connection=found)

    @property
    def database(self) -> str:
        return self.connection.parameters["dbname"]

    @property
    def host(self) -> str:
        return self.connection.parameters.get("host") or "localhost"

    @property
    def address(self) -> str:
        port = self.connection.parameters.get("port")
        return f"{self.host}:{port}" if port else self.host

    @property
    def password(self) -> str | None:
        return self.connection.password

    @property
    def redacted(self) -> str:
        return self.connection.redacted

    def connection_string(self) -> str:
        """libpq's key=value form without the password (which goes through PGPASSWORD)."""
        return self.connection.conninfo


@dataclass(frozen=True)
class TargetServer:
    version_num: int  # e.g. 150018
    version: str  # e.g. "15.18"


def find_pgtools() -> PgTools:
    try:
        return locate_pgtools(program="pg_restore")
    except PgToolsNotFound as error:
        raise RestoreFailed(str(error)) from None


def check_target(target: Target) -> TargetServer:
    """Connect to the target now (host, credentials, database); RestoreFailed saying why not."""
    import psycopg2

    try:
        connection = psycopg2.connect(
            target.connection_string(),
            password=target.password,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except psycopg2.Error as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise RestoreFailed(
            f"cannot connect to {target.redacted}: {_without_password(reason, target)}"
        ) from None
    try:
        version_num = int(connection.server_version)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            row = cursor.fetchone()
        version = str(row[0]).split()[0] if row else str(version_num)
    finally:
        connection.close()
    return TargetServer(version_num=version_num, version=version)


def check_archive_file(path: Path) -> None:
    """RestoreFailed unless `path` starts like a pg_dump custom-format archive."""
    with path.open("rb") as file:
        header = file.read(len(ARCHIVE_MAGIC))
    if header != ARCHIVE_MAGIC:
        raise RestoreFailed(f"{path} is not a pg_dump custom-format archive (no PGDMP header)")


def restore_command(
    tools: PgTools, archive: Path, target: Target
) -> tuple[list[str], dict[str, str]]:
    """argv (no password in it) and environment (PGPASSWORD) of pg_restore."""
    argv = [
        tools.program("pg_restore"),
        *RESTORE_FLAGS,
        "--verbose",
        f"--dbname={target.connection_string()}",
        str(archive),
    ]
    return argv, tools.environment(target.password)


def count_entries(tools: PgTools, archive: Path) -> int | None:
    """How many entries of the archive's table of contents pg_restore will work through."""
    try:
        result = subprocess.run(
            [tools.program("pg_restore"), "--list", str(archive)],
            env=tools.environment(),
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None  # the restore itself says what is wrong
    if result.returncode != 0:
        return None
    return sum(1 for line in result.stdout.splitlines() if line and not line.startswith(";"))


@dataclass
class RestoreOutcome:
    # Set when the only error was the known `transaction_timeout` one (servers before 17).
    ignored_transaction_timeout: bool = False


def run_pg_restore(
    tools: PgTools,
    archive: Path,
    target: Target,
    on_progress: Callable[[int], Any] | None = None,
) -> RestoreOutcome:
    """Run pg_restore; `on_progress` gets the number of entries done so far.

    RestoreFailed with pg_restore's own error lines when it fails for a real reason.
    """
    argv, env = restore_command(tools, archive, target)
    process = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    assert process.stderr is not None
    report: list[str] = []  # what is not progress: errors, the commands that failed, warnings
    done = 0
    for raw in process.stderr:
        line = raw.rstrip("\n")
        if _ENTRY_DONE.match(line) and not _SESSION_SETUP.match(line):
            done += 1
            if on_progress is not None:
                on_progress(done)
        elif not line.startswith("pg_restore: ") or _ERROR.match(line) or "warning" in line:
            report.append(line)
    code = process.wait()
    if code == 0:
        return RestoreOutcome()
    if _only_transaction_timeout(report):
        return RestoreOutcome(ignored_transaction_timeout=True)
    errors = _without_password("\n".join(report).strip(), target)
    raise RestoreFailed(
        f"pg_restore failed (exit code {code})" + (f":\n{errors}" if errors else "")
    )


def _only_transaction_timeout(report: list[str]) -> bool:
    """Whether pg_restore's one and only error was the server refusing transaction_timeout."""
    errors = [line for line in report if _ERROR.match(line)]
    ignored = [int(m[1]) for line in report if (m := _ERRORS_IGNORED.match(line))]
    return (
        len(errors) >= 1
        and all(_TRANSACTION_TIMEOUT in line for line in errors)
        and ignored == [len(errors)]
    )


def _without_password(text: str, target: Target) -> str:
    return target.connection.scrub(text)
