"""A restore drill's checks of a database on a running server, the way PostgreSQL checks
itself: its objects against the archive's table of contents, pg_amcheck, row counts,
smoke queries.

The archive and whatever server it was recovered from are untrusted, so no object of
theirs runs as a superuser: the checks that need a superuser (the catalog, `count(*)`,
pg_amcheck) run no code of the archive: catalog queries use pg_catalog only, `count(*)`
of a table evaluates nothing of it (a superuser is not subject to row security), and
amcheck evaluates an index's expressions as the table's owner inside a
security-restricted operation (PostgreSQL does that since 14.3): that owner is
`DRILL_ROLE`. On a recovered cluster (`throwaway.handle_of`), whose objects belong to the
source's roles, `confine` first disables its event triggers, drops every setting the
source gave its databases and roles, makes a source role named `DRILL_ROLE` plain, and
hands every relation and routine a superuser owns to `DRILL_ROLE`: a function in an
index expression or a view then never runs as a superuser. amcheck's functions are
installed afresh in a schema of the superuser's, never taken from the database; smoke
queries run as `DRILL_ROLE` in a READ ONLY transaction with a statement timeout.
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg2
from psycopg2 import extensions, sql

from pgbackups.domain.smoke import SmokeQuery
from pgbackups.postgres.cluster import SESSION_OVERRIDES, ClusterFailed
from pgbackups.postgres.contents import CATALOG_QUERIES, NOT_OBJECTS, parse_toc_entry
from pgbackups.postgres.throwaway import (
    DRILL_ROLE,
    DRILL_ROLE_ATTRIBUTES,
    DrillFailed,
    ServerHandle,
    connect_as,
)

AMCHECK_SCHEMA = "pgbackups_amcheck"
SMOKE_TIMEOUT_SECONDS = 10
# What a check's detail quotes at most: it goes into records and reports.
MAX_DETAIL = 1500
FIRST_FINDINGS = 10


@dataclass(frozen=True)
class Check:
    name: str  # "restore", "objects", "amcheck", "row_counts", "smoke 1" … "smoke 10"
    passed: bool
    detail: str
    seconds: float = 0.0  # how long it took


@dataclass(frozen=True)
class TableRows:
    schema: str
    table: str
    rows: int


def seconds_left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 1.0)


def clip_detail(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


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
    with connect_as(server, database, server.superuser) as connection:
        connection.autocommit = True
        confine(connection, database)
    # Anew: the sessions now start without the source's settings.
    with connect_as(server, database, server.superuser) as connection:
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
        return Check(name, False, clip_detail(_error_text(error)), time.monotonic() - started)
    if isinstance(result, Check):
        return replace(result, seconds=time.monotonic() - started)
    passed, detail = result
    return Check(name, passed, clip_detail(detail), time.monotonic() - started)


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
        timeout=seconds_left(deadline),
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
                (str(int(seconds_left(deadline) * 1000)),),
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
        return Check("row_counts", False, clip_detail(f"{differ}: {shown}"))
    return Check("row_counts", True, f"every table counted, as expected: {summary}")


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# -- smoke queries ---------------------------------------------------------------------------


def run_smoke(server: ServerHandle, database: str, query: SmokeQuery) -> tuple[bool, str]:
    """The query as `DRILL_ROLE`, READ ONLY, within the statement timeout; judged."""
    with connect_as(
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
