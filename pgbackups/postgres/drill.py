"""A restore drill: an archive restored into a throwaway PostgreSQL server, then checked
the way PostgreSQL checks itself.

The server (`throwaway_server`) is initdb'd in a private folder of the work dir, of
the install given (the source's major), listens on no TCP port (a unix socket in
that folder only, so `trust` authentication reaches no one else), and is stopped
and its folder removed on every way out, an exception or Ctrl-C/SIGTERM included.
Its configuration is written afresh from `SERVER_SETTINGS`, sized for a 2-vCPU,
4 GB task and unsafe on purpose (`fsync = off`): it is thrown away.

The archive and whatever server it was recovered from are untrusted, so no object
of theirs runs as a superuser:
- pg_restore connects as `DRILL_ROLE`, an unprivileged role that owns the drill's
  database, with `--no-owner --no-privileges` (the archive's roles do not exist
  here, and an archive's SQL must not run with more rights than the role a user
  would restore it as); an extension that needs a superuser and that only
  inspects (`PRECREATED_EXTENSIONS`) is created before the restore, by us;
- the checks that need a superuser (the catalog, `count(*)`, pg_amcheck) run no
  code of the archive: catalog queries use pg_catalog only, `count(*)` of a table
  evaluates nothing of it (a superuser is not subject to row security), and
  amcheck evaluates an index's expressions as the table's owner inside a
  security-restricted operation (PostgreSQL does that since 14.3): that owner is
  `DRILL_ROLE`. On a recovered cluster (`handle_of`), whose objects belong to the
  source's roles, `confine` first disables its event triggers, drops every setting
  the source gave its databases and roles, makes a source role named `DRILL_ROLE`
  plain, and hands every relation and routine a superuser owns to `DRILL_ROLE`: a
  function in an index expression or a view then never runs as a superuser.
  amcheck's functions are installed afresh in a schema of the superuser's, never
  taken from the database;
- smoke queries run as `DRILL_ROLE` in a READ ONLY transaction with a statement
  timeout.
Connections use the server's own install (psycopg2 and pg_amcheck over the socket)
with the session overrides of `pgbackups.postgres.cluster`.
"""

from __future__ import annotations

import contextlib
import functools
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg2
from psycopg2 import extensions, sql

from pgbackups.domain.smoke import SmokeQuery
from pgbackups.postgres.cluster import (
    SESSION_OVERRIDES,
    ClusterFailed,
    RecoveredCluster,
    _write_configuration,
    check_reachable,
    give_to,
    private_file,
    private_folder,
    server_user,
)
from pgbackups.postgres.restore import (
    RestoreFailed,
    Target,
    list_streamed_entries,
    run_pg_restore,
)

if TYPE_CHECKING:
    from pgbackups.postgres.pgtools import PgTools

SUPERUSER = "pgbackups"
DRILL_ROLE = "pgbackups_drill"
DRILL_ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
DRILL_DATABASE = "drill"
AMCHECK_SCHEMA = "pgbackups_amcheck"
# The socket's file name only (.s.PGSQL.<port>): the server listens on no TCP port.
PORT = 5432
SMOKE_TIMEOUT_SECONDS = 10
# The superuser's sessions: pg_catalog alone on the search path (nothing of the database's
# schemas stands in for a built-in), and whatever the source set for its sessions undone.
SUPERUSER_OVERRIDES = (
    "-c search_path=pg_catalog -c statement_timeout=0 -c lock_timeout=0 "
    "-c idle_in_transaction_session_timeout=0 -c default_transaction_read_only=off"
)
# The session override an unprivileged role may set (cluster.SESSION_OVERRIDES).
UNPRIVILEGED_OVERRIDES = "-c local_preload_libraries="
CONNECT_TIMEOUT_SECONDS = 10
# A unix socket's path is at most 107 bytes (sun_path).
MAX_SOCKET_PATH = 107
# What a check's detail quotes at most: it goes into records and reports.
MAX_DETAIL = 1500
FIRST_FINDINGS = 10
# Extensions that need a superuser to create, whose functions only inspect: created by us
# before the restore when the archive has them, so that an unprivileged restore of a
# database that uses them does not fail (the archive's `CREATE EXTENSION IF NOT EXISTS`
# is then a no-op). Anything else that needs a superuser fails the restore, by name.
PRECREATED_EXTENSIONS = frozenset(
    {"pg_stat_statements", "pgstattuple", "pg_buffercache", "pg_visibility",
     "pg_freespacemap", "pgrowlocks", "amcheck"}
)  # fmt: skip
SERVER_SETTINGS = {
    "listen_addresses": "",
    "port": str(PORT),
    "unix_socket_permissions": "0700",
    "ssl": "off",
    "max_connections": "20",
    "shared_buffers": "512MB",
    "work_mem": "32MB",
    "maintenance_work_mem": "512MB",
    # mmap files in the data directory: a container's /dev/shm is often 64 MB.
    "dynamic_shared_memory_type": "mmap",
    "max_locks_per_transaction": "256",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "archive_mode": "off",
    # Fewer checkpoints, within the task's 20 GB of storage beside the restored data.
    "max_wal_size": "2GB",
    "checkpoint_timeout": "30min",
    "autovacuum": "off",
    "jit": "off",
    "log_min_messages": "warning",
    "TimeZone": "UTC",
}
NO_OWNER_WARNING = (
    f"restored with --no-owner --no-privileges as the unprivileged role {DRILL_ROLE}: "
    "the archive's owners and grants are not checked (its roles do not exist on the "
    "drill's server)"
)
TRANSACTION_TIMEOUT_WARNING = (
    "the drill's PostgreSQL does not know transaction_timeout (pg_restore 18 sets it): "
    "that one error was ignored, nothing else failed"
)


class DrillFailed(Exception):
    """The drill could not run at all (no server, no connection); the reason."""


@dataclass(frozen=True)
class Check:
    name: str  # "restore", "objects", "amcheck", "row_counts", "smoke 1" … "smoke 10"
    passed: bool
    detail: str
    seconds: float = 0.0  # how long it took


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


@dataclass(frozen=True)
class TableRows:
    schema: str
    table: str
    rows: int


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


@dataclass(frozen=True)
class ServerHandle:
    """A running server the checks connect to, over its unix socket only."""

    install: Path
    socket_dir: Path
    port: int
    superuser: str
    os_user: str | None


def handle_of(cluster: RecoveredCluster) -> ServerHandle:
    """A recovered, running cluster (a point-in-time drill) as the checks see it."""
    return ServerHandle(
        install=cluster.install,
        socket_dir=cluster.socket_dir,
        port=cluster.port,
        superuser=cluster.bootstrap_user(),
        os_user=cluster.user,
    )


# -- the drill -----------------------------------------------------------------------------


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
        _create_database(server, archive_extensions(entries or []))
        phases.lap("start")
        # As the unprivileged owner of the database, without the archive's owners and
        # grants (restore.RESTORE_FLAGS): see the module's docstring.
        target = Target.parse(
            f"postgresql:///{DRILL_DATABASE}?host={quote(str(server.socket_dir), safe='')}"
            f"&port={server.port}&user={DRILL_ROLE}"
        )
        try:
            outcome = run_pg_restore(
                tools, None, target, feed=feed, clean=False, timeout=_left(deadline)
            )
        except RestoreFailed as error:
            restore = Check("restore", False, _clip(str(error)))
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
            expected_rows=expected_rows, timeout=_left(deadline),
        )  # fmt: skip
        if entries is None:
            checks = [
                replace(check, passed=False,
                        detail=_clip(f"the archive's table of contents: {unreadable}"))
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


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 1.0)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


# -- the throwaway server --------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_server(install: Path, work_dir: Path) -> Iterator[ServerHandle]:
    """A fresh server of `install` running in a private folder of `work_dir`; stopped and
    its folder removed on the way out, whatever happened."""
    user = server_user()
    root = Path(tempfile.mkdtemp(prefix="drill-", dir=work_dir))
    server = RecoveredCluster(
        data_dir=root / "data", install=install, socket_dir=root / "socket", port=PORT,
        user=user, log_file=root / "server.log",
    )  # fmt: skip
    try:
        try:
            check_reachable(root, user)  # the work dir and its parents
        except ClusterFailed as error:
            raise DrillFailed(str(error)) from None
        socket_path = server.socket_dir / f".s.PGSQL.{PORT}"
        if len(str(socket_path).encode()) > MAX_SOCKET_PATH:
            raise DrillFailed(
                f"the work folder's path is too long for a unix socket ({socket_path}): "
                "choose a shorter one"
            )
        give_to(user, root)
        private_folder(server.socket_dir, user)
        with private_file(server.log_file, user):
            pass
        try:
            server.run(
                "initdb", "--pgdata", str(server.data_dir), "--username", SUPERUSER,
                "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync",
                "--no-instructions",
            )  # fmt: skip
        except ClusterFailed as error:
            raise DrillFailed(f"the drill's server could not be created: {error}") from None
        server.major = int((server.data_dir / "PG_VERSION").read_text().strip())
        settings = SERVER_SETTINGS | {
            "unix_socket_directories": str(server.socket_dir),
            "hba_file": str(server.data_dir / "pgbackups_hba.conf"),
            "ident_file": str(server.data_dir / "pgbackups_hba.conf"),
        }
        if server.major >= 17:
            settings["event_triggers"] = "off"
        # trust: the socket is in a folder only the server's user (and root) can enter.
        _write_configuration(server, settings, "local all all trust\n")
        try:
            server.start()
        except ClusterFailed as error:
            raise DrillFailed(f"the drill's PostgreSQL {server.major}: {error}") from None
        yield ServerHandle(
            install=install, socket_dir=server.socket_dir, port=PORT, superuser=SUPERUSER,
            os_user=user,
        )  # fmt: skip
    finally:
        if (server.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(ClusterFailed, OSError):
                server.run(
                    "pg_ctl", "--pgdata", str(server.data_dir), "--mode", "immediate",
                    "--wait", "stop", check=False,
                )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def archive_extensions(entries: Iterable[str]) -> list[str]:
    """The extensions the archive's table of contents creates (`EXTENSION - name`)."""
    names = []
    for entry in entries:
        parsed = parse_toc_entry(entry)
        if parsed is not None and parsed[0] == "EXTENSION":
            names.append(parsed[1].removeprefix("- ").rsplit(" ", 1)[0])
    return names


def _create_database(server: ServerHandle, extensions: Iterable[str]) -> None:
    """The drill's database, owned by `DRILL_ROLE`, with the allowed extensions the archive
    needs a superuser for (in the public schema, before anything of the archive exists)."""
    with _connection(server, "postgres", server.superuser) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("CREATE ROLE {} " + DRILL_ROLE_ATTRIBUTES).format(
                    sql.Identifier(DRILL_ROLE)
                )
            )
            cursor.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8'").format(
                    sql.Identifier(DRILL_DATABASE), sql.Identifier(DRILL_ROLE)
                )
            )
    wanted = [name for name in extensions if name in PRECREATED_EXTENSIONS]
    if not wanted:
        return
    with _connection(server, DRILL_DATABASE, server.superuser) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for name in wanted:
                # Not installed here: the archive's own CREATE EXTENSION fails, by name.
                with contextlib.suppress(psycopg2.Error):
                    cursor.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {} SCHEMA public").format(
                            sql.Identifier(name)
                        )
                    )


def server_version(server: ServerHandle) -> str:
    with (
        _connection(server, "postgres", server.superuser) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SHOW server_version")
        row = cursor.fetchone()
    return str(row[0]).split()[0] if row else ""


# -- connections -----------------------------------------------------------------------------


@contextlib.contextmanager
def _connection(server: ServerHandle, database: str, user: str, *settings: str) -> Iterator[Any]:
    """psycopg2 over the server's socket as `user` (as the superuser, with
    `SUPERUSER_OVERRIDES`); DrillFailed when it cannot connect."""
    if user == server.superuser:
        options = [SESSION_OVERRIDES, SUPERUSER_OVERRIDES, *settings]
    else:  # session_preload_libraries is the superuser's to set (`confine` resets it)
        options = [UNPRIVILEGED_OVERRIDES, *settings]
    try:
        connection = psycopg2.connect(
            host=str(server.socket_dir), port=server.port, user=user, dbname=database,
            options=" ".join(options), connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="pgbackups-drill",
        )  # fmt: skip
    except psycopg2.Error as error:
        reason = " ".join(str(error).split())
        raise DrillFailed(f"cannot connect to the drill's server as {user}: {reason}") from None
    try:
        yield connection
    finally:
        connection.close()


def _error_text(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# -- the checks ------------------------------------------------------------------------------


def check_server(
    server: ServerHandle,
    database: str,
    *,
    smoke_queries: Sequence[SmokeQuery],
    expected_objects: Iterable[str] | None = None,
    expected_rows: Sequence[TableRows] | None = None,
    timeout: float = 3600.0,
) -> tuple[list[Check], list[TableRows]]:
    """The checks of `database` on a running server: "objects" (when `expected_objects`
    are given: `pg_restore --list` entries or "TYPE schema name"), "amcheck",
    "row_counts" (compared with `expected_rows` when given), "smoke 1"…; and every
    table's rows. Each check that cannot run fails with the reason; the others run.

    It changes the cluster (`confine`, amcheck installed afresh): for a throwaway one only."""
    deadline = time.monotonic() + timeout
    with _connection(server, database, server.superuser) as connection:
        connection.autocommit = True
        confine(connection, database)
    # Anew: the sessions now start without the source's settings.
    with _connection(server, database, server.superuser) as connection:
        connection.autocommit = True
        checks = []
        if expected_objects is not None:
            checks.append(_guarded("objects", lambda: check_objects(connection, expected_objects)))
        checks.append(
            _guarded("amcheck", lambda: check_amcheck(server, connection, database, deadline))
        )
        tables: list[TableRows] = []

        def count() -> Check:
            found = count_rows(connection, deadline)
            tables.extend(found)
            return judge_rows(found, expected_rows)

        checks.append(_guarded("row_counts", count))
    for number, query in enumerate(smoke_queries, start=1):
        checks.append(
            _guarded(f"smoke {number}", functools.partial(run_smoke, server, database, query))
        )
    return checks, tables


def _guarded(name: str, check: Callable[[], tuple[bool, str] | Check]) -> Check:
    """The check run and timed; failed with the reason when it cannot run."""
    started = time.monotonic()
    try:
        result = check()
    except (
        DrillFailed, ClusterFailed, OSError, subprocess.SubprocessError, psycopg2.Error,
    ) as error:  # fmt: skip
        return Check(name, False, _clip(_error_text(error)), time.monotonic() - started)
    if isinstance(result, Check):
        return replace(result, seconds=time.monotonic() - started)
    passed, detail = result
    return Check(name, passed, _clip(detail), time.monotonic() - started)


def confine(connection: Any, database: str) -> None:
    """No code of the database runs as a superuser in the checks: its event triggers off,
    the cluster's database and role settings gone, every relation and routine a
    superuser owns handed to `DRILL_ROLE` (which exists, is plain, can connect and read
    everything). Little to do on a server whose objects a pg_restore as `DRILL_ROLE`
    created."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT evtname FROM pg_event_trigger WHERE evtenabled <> 'D'")
        for (name,) in cursor.fetchall():
            cursor.execute(sql.SQL("ALTER EVENT TRIGGER {} DISABLE").format(sql.Identifier(name)))
        role, name = sql.Identifier(DRILL_ROLE), sql.Identifier(database)
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DRILL_ROLE,))
        verb = "ALTER" if cursor.fetchone() else "CREATE"
        # A role of that name from the source: made plain, its settings and memberships gone.
        cursor.execute(sql.SQL(verb + " ROLE {} " + DRILL_ROLE_ATTRIBUTES).format(role))
        cursor.execute(
            "SELECT m.roleid::regrole::text, m.grantor::regrole::text FROM pg_auth_members m "
            "WHERE m.member = %s::regrole",
            (DRILL_ROLE,),
        )
        for granted, grantor in cursor.fetchall():
            cursor.execute(
                sql.SQL("REVOKE {} FROM {} GRANTED BY {}").format(
                    sql.SQL(granted), role, sql.SQL(grantor)
                )
            )
        # Settings the source gave a database or roles (ALTER DATABASE/ROLE … SET) would
        # apply to the checks' sessions (timeouts, read-only, preload libraries that an
        # unprivileged session cannot override): all of them go.
        cursor.execute(
            "SELECT r.rolname, d.datname FROM pg_db_role_setting s "
            "LEFT JOIN pg_roles r ON r.oid = s.setrole "
            "LEFT JOIN pg_database d ON d.oid = s.setdatabase"
        )
        for setting_role, setting_database in cursor.fetchall():
            who = sql.Identifier(setting_role) if setting_role else sql.SQL("ALL")
            if setting_role is None and setting_database:
                statement = sql.SQL("ALTER DATABASE {} RESET ALL").format(
                    sql.Identifier(setting_database)
                )
            elif setting_database:
                statement = sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(
                    who, sql.Identifier(setting_database)
                )
            else:
                statement = sql.SQL("ALTER ROLE {} RESET ALL").format(who)
            cursor.execute(statement)
        cursor.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(name, role))
        cursor.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(DRILL_ROLE)))
        cursor.execute(
            """
            SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                  WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                   n.nspname, c.relname
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_roles r ON r.oid = c.relowner
             WHERE r.rolsuper AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                               AND d.objid = c.oid AND d.deptype = 'e')
            """
        )
        for kind, schema, name in cursor.fetchall():
            cursor.execute(
                sql.SQL("ALTER {} {}.{} OWNER TO {}").format(
                    sql.SQL(kind),
                    sql.Identifier(schema),
                    sql.Identifier(name),
                    sql.Identifier(DRILL_ROLE),
                )
            )
        cursor.execute(
            """
            SELECT p.oid::regprocedure::text
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              JOIN pg_roles r ON r.oid = p.proowner
             WHERE r.rolsuper AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                               AND d.objid = p.oid AND d.deptype = 'e')
            """
        )
        for (signature,) in cursor.fetchall():
            cursor.execute(
                sql.SQL("ALTER ROUTINE {} OWNER TO {}").format(
                    sql.SQL(signature), sql.Identifier(DRILL_ROLE)
                )
            )


# -- objects: the archive's table of contents against the catalog ---------------------------

_TOC_LINE = re.compile(r"^\s*\d+;\s+\d+\s+\d+\s+(?P<rest>.*)$")
# Entry types that are objects, with the catalog query naming each object as the entry
# does after its type: "schema name" ("-" for objects outside schemas), "schema table name"
# for what belongs to a table, "schema name(argument types)" for routines.
_REL = (
    "SELECT n.nspname || ' ' || c.relname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ({})"
)
_ON_TABLE = (
    "SELECT n.nspname || ' ' || c.relname || ' ' || x.{name} FROM {catalog} x "
    "JOIN pg_class c ON c.oid = x.{rel} JOIN pg_namespace n ON n.oid = c.relnamespace"
)
_ROUTINE = (
    "SELECT n.nspname || ' ' || p.proname || '(' || {args} || ')' FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind IN ({kinds})"
)
_ARGS = (
    "coalesce((SELECT string_agg(format_type(t.type, NULL), ', ' ORDER BY t.ord) "
    "FROM unnest(p.proargtypes) WITH ORDINALITY AS t(type, ord)), '')"
)


def _global(catalog: str, name: str) -> str:
    """Objects outside schemas, named "- name" as pg_dump does."""
    return f"SELECT '- ' || x.{name} FROM {catalog} x"


def _in_schema(catalog: str, name: str, namespace: str, where: str = "") -> str:
    return (
        f"SELECT n.nspname || ' ' || x.{name} FROM {catalog} x "
        f"JOIN pg_namespace n ON n.oid = x.{namespace}{where}"
    )


CATALOG_QUERIES: dict[str, str] = {
    "SCHEMA": _global("pg_namespace", "nspname"),
    "EXTENSION": _global("pg_extension", "extname"),
    "TABLE": _REL.format("'r', 'p'"),
    "VIEW": _REL.format("'v'"),
    "MATERIALIZED VIEW": _REL.format("'m'"),
    "SEQUENCE": _REL.format("'S'"),
    "FOREIGN TABLE": _REL.format("'f'"),
    "INDEX": _REL.format("'i', 'I'"),
    "CONSTRAINT": (
        "SELECT n.nspname || ' ' || coalesce(c.relname, t.typname) || ' ' || x.conname "
        "FROM pg_constraint x JOIN pg_namespace n ON n.oid = x.connamespace "
        "LEFT JOIN pg_class c ON c.oid = x.conrelid LEFT JOIN pg_type t ON t.oid = x.contypid"
    ),
    "TRIGGER": _ON_TABLE.format(name="tgname", catalog="pg_trigger", rel="tgrelid"),
    "RULE": _ON_TABLE.format(name="rulename", catalog="pg_rewrite", rel="ev_class"),
    "POLICY": _ON_TABLE.format(name="polname", catalog="pg_policy", rel="polrelid"),
    "ROW SECURITY": _REL.format("'r', 'p'") + " AND c.relrowsecurity",
    "DEFAULT": (
        "SELECT n.nspname || ' ' || c.relname || ' ' || a.attname FROM pg_attrdef x "
        "JOIN pg_class c ON c.oid = x.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = x.adrelid AND a.attnum = x.adnum"
    ),
    "FUNCTION": _ROUTINE.format(args=_ARGS, kinds="'f', 'w'"),
    "PROCEDURE": _ROUTINE.format(args=_ARGS, kinds="'p'"),
    "AGGREGATE": _ROUTINE.format(
        args=f"CASE WHEN p.pronargs = 0 THEN '*' ELSE {_ARGS} END", kinds="'a'"
    ),
    "TYPE": _in_schema("pg_type", "typname", "typnamespace"),
    "DOMAIN": _in_schema("pg_type", "typname", "typnamespace", " WHERE x.typtype = 'd'"),
    "COLLATION": _in_schema("pg_collation", "collname", "collnamespace"),
    "CONVERSION": _in_schema("pg_conversion", "conname", "connamespace"),
    "STATISTICS": _in_schema("pg_statistic_ext", "stxname", "stxnamespace"),
    "TEXT SEARCH CONFIGURATION": _in_schema("pg_ts_config", "cfgname", "cfgnamespace"),
    "TEXT SEARCH DICTIONARY": _in_schema("pg_ts_dict", "dictname", "dictnamespace"),
    "EVENT TRIGGER": _global("pg_event_trigger", "evtname"),
    "PUBLICATION": _global("pg_publication", "pubname"),
    "SERVER": _global("pg_foreign_server", "srvname"),
    "FOREIGN DATA WRAPPER": _global("pg_foreign_data_wrapper", "fdwname"),
    "LARGE OBJECT": _global("pg_largeobject_metadata", "oid"),
}
CATALOG_QUERIES["FK CONSTRAINT"] = CATALOG_QUERIES["CHECK CONSTRAINT"] = CATALOG_QUERIES[
    "CONSTRAINT"
]
CATALOG_QUERIES["BLOB"] = CATALOG_QUERIES["BLOB METADATA"] = CATALOG_QUERIES["LARGE OBJECT"]
# Entries that are data or properties of an object, not objects: nothing to look up.
NOT_OBJECTS = frozenset(
    {"TABLE DATA", "SEQUENCE SET", "SEQUENCE OWNED BY", "MATERIALIZED VIEW DATA", "BLOBS",
     "LARGE OBJECTS", "TABLE ATTACH", "INDEX ATTACH", "COMMENT", "ACL", "DEFAULT ACL",
     "ENCODING", "STDSTRINGS", "SEARCHPATH", "DATABASE", "DATABASE PROPERTIES", "SHELL TYPE",
     "PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA", "SECURITY LABEL"}
)  # fmt: skip
# Every type pg_dump writes that the check knows, longest first (a type can begin another).
_TYPES = sorted(
    {*CATALOG_QUERIES, *NOT_OBJECTS, "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "CAST",
     "TRANSFORM", "USER MAPPING", "PROCEDURAL LANGUAGE", "ACCESS METHOD", "SUBSCRIPTION",
     "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "SUBSCRIPTION TABLE"},
    key=len, reverse=True,
)  # fmt: skip


def parse_toc_entry(line: str) -> tuple[str, str] | None:
    """(type, what follows it) of a `pg_restore --list` entry ("8; 2615 16385 SCHEMA - s
    owner" → ("SCHEMA", "- s owner")) or of an expected object ("TABLE public items");
    None for a comment or an unknown type."""
    found = _TOC_LINE.match(line)
    rest = found["rest"] if found else line.strip()
    for kind in _TYPES:
        if rest.startswith(kind + " "):
            return kind, rest[len(kind) + 1 :]
    return None


def toc_key(entry: str) -> str | None:
    """An archive's entry as an expected object: "TYPE schema name" with the owner (the
    last word) left out; None for a comment."""
    parsed = parse_toc_entry(entry)
    if parsed is None:
        found = _TOC_LINE.match(entry)
        return found["rest"].rstrip() if found else None
    kind, rest = parsed
    return f"{kind} {rest.rsplit(' ', 1)[0]}" if " " in rest else f"{kind} {rest}"


def check_objects(connection: Any, expected: Iterable[str]) -> tuple[bool, str]:
    """Every expected object ("TYPE schema name") exists in the catalog; the missing ones
    named. A type the check does not model is counted, not compared."""
    wanted: dict[str, list[str]] = {}
    unknown: set[str] = set()
    for key in dict.fromkeys(expected):
        parsed = parse_toc_entry(key)
        if parsed is None:
            unknown.add(key.split(" ", 1)[0])
            continue
        kind, name = parsed
        if kind in NOT_OBJECTS:
            continue
        if kind not in CATALOG_QUERIES:
            unknown.add(kind)
            continue
        wanted.setdefault(kind, []).append(name)
    missing = []
    compared = 0
    with connection.cursor() as cursor:
        for kind, names in wanted.items():
            cursor.execute(CATALOG_QUERIES[kind])
            present = {row[0] for row in cursor.fetchall()}
            for name in names:
                compared += 1
                if not _present(kind, name, present):
                    missing.append(f"{kind} {name}")
    if missing:
        shown = "; ".join(missing[:FIRST_FINDINGS])
        more = f" and {len(missing) - FIRST_FINDINGS} more" if len(missing) > FIRST_FINDINGS else ""
        return False, f"{len(missing)} of {compared} objects missing: {shown}{more}"
    detail = f"all {compared} objects of the table of contents are in the restored database"
    if unknown:
        detail += f" (entries not compared: {', '.join(sorted(unknown))})"
    return True, detail


def _present(kind: str, name: str, present: set[str]) -> bool:
    # Large objects come in groups ("- 16582..16583"): the group's first and last exist.
    if kind in ("BLOB METADATA", "LARGE OBJECT", "BLOB") and ".." in name:
        low, _, high = name.removeprefix("- ").partition("..")
        return f"- {low}" in present and f"- {high}" in present
    return name in present


# -- amcheck ---------------------------------------------------------------------------------


def check_amcheck(
    server: ServerHandle, connection: Any, database: str, deadline: float
) -> tuple[bool, str]:
    """`pg_amcheck --heapallindexed` (the server's own) of every table and B-tree index,
    amcheck installed afresh in a schema of the superuser's."""
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS amcheck CASCADE")
        cursor.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(AMCHECK_SCHEMA))
        )
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(AMCHECK_SCHEMA)))
        cursor.execute(
            sql.SQL("CREATE EXTENSION amcheck SCHEMA {}").format(sql.Identifier(AMCHECK_SCHEMA))
        )
    conninfo = (
        f"host='{_conninfo_quote(str(server.socket_dir))}' port={server.port} "
        f"user='{_conninfo_quote(server.superuser)}' dbname='{_conninfo_quote(database)}'"
    )
    env = {
        "PATH": f"{server.install / 'bin'}:/usr/bin:/bin",
        "LD_LIBRARY_PATH": str(server.install / "lib"),
        "LC_ALL": "C.UTF-8",
        "PGOPTIONS": SESSION_OVERRIDES,
        "PGAPPNAME": "pgbackups-drill",
    }
    result = subprocess.run(
        [str(server.install / "bin" / "pg_amcheck"), "--heapallindexed", "--jobs=2", conninfo],
        env=env, capture_output=True, text=True, check=False, cwd="/",
        timeout=_left(deadline),
    )  # fmt: skip
    findings = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode == 0 and not findings:
        return True, "pg_amcheck --heapallindexed: every table and B-tree index is clean"
    lines = findings or [line.strip() for line in result.stderr.splitlines() if line.strip()]
    return False, f"pg_amcheck (exit code {result.returncode}): " + " | ".join(
        lines[:FIRST_FINDINGS]
    )


def _conninfo_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# -- row counts ------------------------------------------------------------------------------


def count_rows(connection: Any, deadline: float) -> list[TableRows]:
    """`count(*)` of every table that holds rows (partitions, not their parents), as the
    superuser: no row security applies, and counting evaluates nothing of the table's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY 1, 2"
        )
        names = cursor.fetchall()
        tables = []
        for schema, table in names:
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                (str(int(_left(deadline) * 1000)),),
            )
            cursor.execute(
                sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )
            row = cursor.fetchone()
            tables.append(TableRows(schema=schema, table=table, rows=int(row[0]) if row else 0))
        cursor.execute("RESET statement_timeout")
    return tables


def judge_rows(tables: Sequence[TableRows], expected: Sequence[TableRows] | None) -> Check:
    total = sum(table.rows for table in tables)
    summary = f"{_counted(len(tables), 'table')}, {_counted(total, 'row')}"
    if not expected:
        return Check("row_counts", True, f"every table counted: {summary}")
    found = {(t.schema, t.table): t.rows for t in tables}
    wrong = []
    for table in expected:
        name, rows = f"{table.schema}.{table.table}", found.get((table.schema, table.table))
        if rows is None:
            wrong.append(f"{name} is missing ({_counted(table.rows, 'row')} expected)")
        elif rows != table.rows:
            wrong.append(f"{name}: {_counted(rows, 'row')}, {table.rows} expected")
    if wrong:
        shown = "; ".join(wrong[:FIRST_FINDINGS])
        differ = "1 table differs" if len(wrong) == 1 else f"{len(wrong)} tables differ"
        return Check("row_counts", False, _clip(f"{differ}: {shown}"))
    return Check("row_counts", True, f"every table counted, as expected: {summary}")


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# -- smoke queries ---------------------------------------------------------------------------


def run_smoke(server: ServerHandle, database: str, query: SmokeQuery) -> tuple[bool, str]:
    """The query as `DRILL_ROLE`, READ ONLY, within the statement timeout; judged."""
    with _connection(
        server, database, DRILL_ROLE,
        "-c default_transaction_read_only=on",
        f"-c statement_timeout={SMOKE_TIMEOUT_SECONDS * 1000}",
    ) as connection:  # fmt: skip
        # Every value in PostgreSQL's text form, as the expectation is written.
        as_text = extensions.new_type(
            tuple(extensions.string_types), "PGBACKUPS_TEXT", lambda value, cursor: value
        )
        extensions.register_type(as_text, connection)
        connection.set_session(readonly=True)
        try:
            with connection.cursor() as cursor:
                cursor.execute(query.sql)
                rows = cursor.fetchall() if cursor.description is not None else []
        except psycopg2.Error as error:
            return False, f"{query.quoted()}: failed: {_error_text(error)}"
        finally:
            connection.rollback()
    passed, found = query.judge(rows)
    return passed, f"{query.quoted()}: {found}"
