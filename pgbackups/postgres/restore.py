"""pg_restore 18 into a target database: the CLI's `backups-restore` and the stack's
restores (`pgbackups.usecases.restores`) run it the same way.

An archive is streamed from storage into pg_restore's standard input
(never written to disk), its size and SHA-256 checked as it passes; a mismatch
fails the restore, and the target is then partial, as after any failure or
Ctrl-C: the command says how far pg_restore got and how to redo it. pg_restore's
errors are summed up (how many, the first few, the privilege refused). With
several CPUs (the Fargate task) the archive is a checked file instead, and
pg_restore runs `--jobs` workers on it (pg_restore cannot run them on a stream).

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

import contextlib
import io
import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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
# With --jobs, the data and the indexes are restored by workers between these two lines;
# the leader says `finished item <id> <what>` for each (the workers' own lines, written
# to the same stderr at the same time, may come cut and mixed: they are not counted).
_PARALLEL_LOOP = re.compile(r"(entering|finished) main parallel loop")
_ITEM_FINISHED = re.compile(r"finished item \d+ .+$")
# An error's prefix wherever it lands in a line (workers' output interleaves).
_ANY_ERROR = re.compile(r"(?:^|[\s:])error: ")
# pg_restore's lines that say where an error happened, not what it was; with --jobs, one
# session's `error: ` prefix can land on another's context line.
_CONTEXT = re.compile(
    r"^(?:\s*(?:pg_restore:|error:))*\s*(?:while (?:INITIALIZING|PROCESSING TOC|FINALIZING):"
    r"|from TOC entry )"
)


# What `clean` adds: drop each object before creating it again.
CLEAN_FLAGS = ("--clean", "--if-exists")


class RestoreFailed(Exception):
    pass


@dataclass(frozen=True)
class Target:
    """Where a restore goes, as libpq reads the URL (`pgbackups.postgres.urls`)."""

    url: str = field(repr=False)
    connection: Connection

    @classmethod
    def registered(cls, url: str) -> Target:
        """A target the stack restores into (ConnectionFailed, ConnectionParameterNotAllowed):
        read as a registered URL is, so nothing in it reaches the runner's own files."""
        from pgbackups.postgres.urls import registered_connection

        return cls(url=url, connection=registered_connection(url))

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
    tools: PgTools,
    archive: Path | None,
    target: Target,
    tables: Sequence[str] = (),
    schemas: Sequence[str] = (),
    *,
    clean: bool = True,
    jobs: int = 1,
) -> tuple[list[str], dict[str, str]]:
    """argv (no password in it) and environment (PGPASSWORD) of pg_restore; without an
    archive file, pg_restore reads the archive from its standard input. Without `clean`,
    the target's objects are not dropped first (`--clean --if-exists` left out). More
    than one job needs an archive file (pg_restore's workers each read it)."""
    if jobs > 1 and archive is None:
        raise ValueError("pg_restore runs several jobs on an archive file only")
    flags = RESTORE_FLAGS if clean else tuple(f for f in RESTORE_FLAGS if f not in CLEAN_FLAGS)
    argv = [
        tools.program("pg_restore"),
        *flags,
        "--verbose",
        *((f"--jobs={jobs}",) if jobs > 1 else ()),
        *(f"--table={table}" for table in tables),
        *(f"--schema={schema}" for schema in schemas),
        f"--dbname={target.connection_string()}",
    ]
    if archive is not None:
        argv.append(str(archive))
    return argv, tools.environment(target.password)


def count_entries(
    tools: PgTools, archive: Path, tables: Sequence[str] = (), schemas: Sequence[str] = ()
) -> int | None:
    """How many entries of the archive's table of contents pg_restore will work through
    (of the `tables` and `schemas` only, when given)."""
    try:
        result = subprocess.run(
            [
                tools.program("pg_restore"),
                "--list",
                *(f"--table={table}" for table in tables),
                *(f"--schema={schema}" for schema in schemas),
                str(archive),
            ],
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


def count_streamed_entries(
    tools: PgTools, feed: Feed, tables: Sequence[str] = (), schemas: Sequence[str] = ()
) -> int | None:
    """`count_entries` of an archive that `feed` streams: pg_restore reads the table of
    contents at its start and stops reading there (the rest is never downloaded)."""
    try:
        return len(list_streamed_entries(tools, feed, tables, schemas))
    except RestoreFailed:
        return None


def list_streamed_entries(
    tools: PgTools, feed: Feed, tables: Sequence[str] = (), schemas: Sequence[str] = ()
) -> list[str]:
    """The entries of the table of contents (`pg_restore --list`, comments left out) of an
    archive that `feed` streams (only its start is read); RestoreFailed with pg_restore's
    reason when it cannot be read."""
    argv = [
        tools.program("pg_restore"),
        "--list",
        *(f"--table={table}" for table in tables),
        *(f"--schema={schema}" for schema in schemas),
    ]
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                argv,
                env=tools.environment(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
        except OSError as error:
            raise RestoreFailed(f"pg_restore could not run: {error}") from None
        feeding = _start_feeding(process, feed)
        assert process.stdout is not None
        listing = process.stdout.read().decode(errors="replace")
        code = process.wait()
        feeding.thread.join(timeout=5)
        if code != 0:
            errors.seek(0)
            reason = errors.read().decode(errors="replace").strip()
            raise RestoreFailed(f"pg_restore --list failed (exit code {code}): {reason}")
    return [line for line in listing.splitlines() if line and not line.startswith(";")]


@dataclass
class RestoreOutcome:
    # Set when the only error was the known `transaction_timeout` one (servers before 17).
    ignored_transaction_timeout: bool = False


@dataclass
class RestoreProgress:
    """What pg_restore has done so far: its entries (`creating TABLE "public.items"`, …)."""

    entries: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.entries:
            return "no entry was restored"
        return f"{len(self.entries)} entries were restored, the last: {self.entries[-1]}"


# The archive as it arrives (from storage): writes it into pg_restore's standard input.
Feed = Callable[[IO[bytes]], None]


def run_pg_restore(
    tools: PgTools,
    archive: Path | None,
    target: Target,
    on_progress: Callable[[int], Any] | None = None,
    *,
    feed: Feed | None = None,
    tables: Sequence[str] = (),
    schemas: Sequence[str] = (),
    done: RestoreProgress | None = None,
    clean: bool = True,
    timeout: float | None = None,
    jobs: int = 1,
) -> RestoreOutcome:
    """Run pg_restore on `archive`, or on what `feed` writes into it (streamed: never on
    disk); `on_progress` gets the number of entries done so far, `done` collects them.
    With `jobs` above 1 (an archive file only), pg_restore runs that many workers.

    RestoreFailed with a summary of pg_restore's errors when it fails for a real reason,
    or with the feed's own failure (a download cut short, a digest that does not match),
    or when it runs past `timeout` seconds (then it is stopped).
    """
    done = done if done is not None else RestoreProgress()
    argv, env = restore_command(tools, archive, target, tables, schemas, clean=clean, jobs=jobs)
    process = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # Its workers are its children: stopped with it, as a group.
        start_new_session=jobs > 1,
    )
    feeding = _start_feeding(process, feed) if feed is not None else None
    timed_out = threading.Event()

    def kill() -> None:
        if jobs > 1:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()

    def stop() -> None:
        timed_out.set()
        kill()

    timer = threading.Timer(timeout, stop) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    assert process.stderr is not None
    report: list[str] = []  # what is not progress: errors, the commands that failed, warnings
    in_parallel_loop = False
    try:
        for raw in io.TextIOWrapper(process.stderr, errors="replace"):
            line = raw.rstrip("\n")
            entry: str | None = None
            if loop := _PARALLEL_LOOP.search(line):
                in_parallel_loop = loop[1] == "entering"
            elif in_parallel_loop:
                if finished := _ITEM_FINISHED.search(line):
                    entry = finished[0]
            elif _ENTRY_DONE.match(line) and not _SESSION_SETUP.match(line):
                entry = line.removeprefix("pg_restore: ")
            if entry is not None:
                done.entries.append(entry)
                if on_progress is not None:
                    on_progress(len(done.entries))
            elif (
                not line.startswith("pg_restore: ") or _ANY_ERROR.search(line) or "warning" in line
            ) and not (in_parallel_loop and _ENTRY_DONE.search(line)):
                report.append(line)
        code = process.wait()
    except BaseException:
        kill()
        process.wait()
        if feeding is not None:
            feeding.thread.join(timeout=5)
        raise
    finally:
        if timer is not None:
            timer.cancel()
    if feeding is not None:
        feeding.thread.join()
    if timed_out.is_set() and code != 0:
        raise RestoreFailed(f"timed out: pg_restore was stopped after {timeout:.0f} s")
    if feeding is not None and feeding.error is not None:
        raise RestoreFailed(str(feeding.error))
    if code == 0:
        return RestoreOutcome()
    if _only_transaction_timeout(report):
        return RestoreOutcome(ignored_transaction_timeout=True)
    raise RestoreFailed(
        _without_password(summarize_errors(code, report, target.connection.parameters), target)
    )


@dataclass
class _Feeding:
    thread: threading.Thread
    error: BaseException | None = None


def _start_feeding(process: subprocess.Popen[bytes], feed: Feed) -> _Feeding:
    assert process.stdin is not None
    sink = process.stdin

    def run() -> None:
        try:
            feed(sink)
        except BrokenPipeError:
            pass  # pg_restore stopped reading: its own errors say why
        except BaseException as error:  # reported by the caller's thread
            feeding.error = error
        finally:
            with contextlib.suppress(OSError):
                sink.close()

    feeding = _Feeding(threading.Thread(target=run, name="archive-feed", daemon=True))
    feeding.thread.start()
    return feeding


FIRST_ERRORS = 3
_PRIVILEGE = re.compile(r"ERROR:\s+(permission denied for [^\n]+|must be owner of [^\n]+)")


def summarize_errors(code: int, report: list[str], parameters: Mapping[str, str]) -> str:
    """pg_restore's failure in a few lines: how many errors, the first few (each with its
    command), and which privilege the target's user lacks when that is the cause."""
    errors = [i for i, line in enumerate(report) if _ERROR.match(line)]
    ignored = [int(m[1]) for line in report if (m := _ERRORS_IGNORED.match(line))]
    count = ignored[0] if ignored else len(errors)
    if not errors:
        text = "\n".join(report).strip()
        return f"pg_restore failed (exit code {code})" + (f":\n{text}" if text else "")
    shown: list[str] = []
    for index in errors[:FIRST_ERRORS]:
        shown.append(report[index])
        following = report[index + 1] if index + 1 < len(report) else ""
        if following.startswith("Command was:"):
            shown.append(following)
    head = f"pg_restore failed (exit code {code}): {count} error{'s' if count != 1 else ''}"
    if count > FIRST_ERRORS:
        head += f", the first {FIRST_ERRORS}"
    lines = [head + ":", *shown]
    denied = sorted({m[1].strip() for line in report if (m := _PRIVILEGE.search(line))})
    if denied:
        user = parameters.get("user") or "the target's user"
        lines.append(
            f"Missing privileges: {user} was refused ({'; '.join(denied[:3])}). "
            "Restore as the owner of the objects the backup holds (or a superuser), "
            "with CREATE on the database and its schemas."
        )
    return "\n".join(lines)


def _only_transaction_timeout(report: list[str]) -> bool:
    """Whether pg_restore's one and only error was the server refusing transaction_timeout
    (once per session: with --jobs, each worker's session says it too, and the count of
    errors ignored is the leader's only)."""
    errors = [
        line
        for line in report
        if _ANY_ERROR.search(line)
        and not line.startswith("Command was:")
        and not (_CONTEXT.match(line) and "ERROR:" not in line)
    ]
    ignored = [int(m[1]) for line in report if (m := _ERRORS_IGNORED.match(line))]
    return (
        len(errors) >= 1
        and all(_TRANSACTION_TIMEOUT in line for line in errors)
        and len(ignored) == 1
        and 1 <= ignored[0] <= len(errors)
    )


def _without_password(text: str, target: Target) -> str:
    return target.connection.scrub(text)
