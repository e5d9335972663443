"""Restore drills (pgbackups.postgres.drill): archives of real PostgreSQL 15 and 18 sources,
made by the layer's pg_dump, restored into a throwaway server of the source's major."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from pgbackups.domain.smoke import SmokeQuery
from pgbackups.domain.verifications import DRILL_PHASES
from pgbackups.postgres.checks import TableRows, check_server
from pgbackups.postgres.cluster import RecoveredCluster, as_user, server_user
from pgbackups.postgres.drill import DrillOutcome, drill_archive
from pgbackups.postgres.dump import dump_command
from pgbackups.postgres.pgtools import PgTools
from pgbackups.postgres.servers import PGSERVER_DIRS_ENV, server_dirs, server_install
from pgbackups.postgres.throwaway import DRILL_ROLE, DrillFailed, handle_of, throwaway_server
from pgbackups.postgres.urls import connection
from pgbackups_local.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration

PG15 = Path(os.environ.get("PGBACKUPS_PG15_DIR", "/usr/lib/postgresql/15"))
TIMEOUT = 600.0

# A database with the objects a drill compares, and a function in an index expression and
# a view that fails when it runs as a superuser once the database is complete.
SHOP = """
CREATE SCHEMA sales;
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL CHECK (name <> ''),
                    price numeric DEFAULT 0);
CREATE TABLE sales.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                           item int REFERENCES items (id), note text);
CREATE FUNCTION guarded(value int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
     AND to_regclass('public.armed') IS NOT NULL THEN
    RAISE EXCEPTION 'guarded() ran as the superuser %', current_user;
  END IF;
  RETURN value;
END $$;
CREATE INDEX items_guarded ON items (guarded(id));
CREATE INDEX orders_note ON sales.orders (lower(note));
CREATE VIEW cheap AS SELECT id, guarded(id) AS checked FROM items WHERE price < 10;
CREATE MATERIALIZED VIEW item_count AS SELECT count(*) AS n FROM items;
CREATE TYPE mood AS ENUM ('sad', 'ok');
-- Extensions only a superuser creates, which the drill creates itself.
CREATE EXTENSION pg_stat_statements;
CREATE EXTENSION amcheck;
INSERT INTO items (name, price) VALUES ('tea', 3), ('cake', 12), ('jam', 5);
INSERT INTO sales.orders (item, note) SELECT 1 + i % 3, 'order ' || i FROM generate_series(1, 250) i;
SELECT lo_from_bytea(0, 'a large object');
CREATE TABLE armed ();  -- from now on, guarded() refuses to run as a superuser
"""
SHOP_TABLES = [
    TableRows("public", "armed", 0),
    TableRows("public", "items", 3),
    TableRows("sales", "orders", 250),
]


def make_archive(server: EmbeddedPostgres, pgtools_dir: Path, folder: Path, sql: str) -> Path:
    """A database on `server` holding `sql`, dumped by the layer's pg_dump as backups are."""
    name = f"db_{os.urandom(6).hex()}"
    url = server.create_database(name)
    server.psql(sql, name)
    argv, env = dump_command(PgTools(pgtools_dir), connection(url), "gzip:1")
    archive = folder / f"{name}.pgsql"
    subprocess.run([*argv, f"--file={archive}"], env=env, check=True, capture_output=True)
    return archive


def feeding(archive: Path, limit: int | None = None) -> Callable[[IO[bytes]], None]:
    """What a drill's caller gives: writes the archive (its first `limit` bytes) each call."""

    def feed(sink: IO[bytes]) -> None:
        with archive.open("rb") as source:
            if limit is None:
                shutil.copyfileobj(source, sink)
            else:
                sink.write(source.read(limit))

    return feed


@pytest.fixture(scope="module")
def installs() -> Iterator[dict[int, Path]]:
    """The server binaries of 15 and 18: PGBACKUPS_PGSERVER_DIRS (the built layers) when
    set, else Debian's 15 and the CLI's cached 18."""
    if server_dirs():
        yield {major: server_install(major, server_dirs()) for major in (15, 18)}
        return
    from pgbackups_cli.pitr import server_binaries

    folder = Path(tempfile.mkdtemp(prefix="pgservers-"))
    try:
        (folder / "postgresql-15").symlink_to(PG15)
        (folder / "postgresql-18").symlink_to(server_binaries(18, lambda _: None))
        roots = (folder,)
        assert not os.environ.get(PGSERVER_DIRS_ENV)
        yield {major: server_install(major, roots) for major in (15, 18)}
    finally:
        shutil.rmtree(folder)


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """The runner's storage: a folder the server's user can enter (as the task's is)."""
    folder = Path(tempfile.mkdtemp(prefix="drill-work-", dir="/var/tmp"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.fixture
def sources(
    postgres: EmbeddedPostgres, postgres15: EmbeddedPostgres
) -> dict[int, EmbeddedPostgres]:
    return {18: postgres, 15: postgres15}


@pytest.fixture
def drill(
    installs: dict[int, Path], pgtools_dir: Path, work_dir: Path
) -> Callable[..., DrillOutcome]:
    """`drill_archive` with the layer's tools, the server of `major` and the work dir."""

    def run(major: int, feed: Callable[[IO[bytes]], None], **options: Any) -> DrillOutcome:
        options.setdefault("smoke_queries", [])
        return drill_archive(
            PgTools(pgtools_dir), installs[major], work_dir, feed, timeout=TIMEOUT, **options
        )

    return run


class Watched:
    """Records the drill's server (its data directory) while the archive is being fed."""

    def __init__(self, work_dir: Path, feed: Callable[[IO[bytes]], None]) -> None:
        self.work_dir, self.inner, self.data_dirs = work_dir, feed, set[Path]()

    def __call__(self, sink: IO[bytes]) -> None:
        self.data_dirs.update(self.work_dir.glob("drill-*/data"))
        self.inner(sink)


def assert_nothing_left(work_dir: Path, install: Path, data_dirs: set[Path]) -> None:
    assert list(work_dir.iterdir()) == []
    assert data_dirs, "the drill's server was never seen"
    for data_dir in data_dirs:
        status = subprocess.run(
            as_user(server_user(), [str(install / "bin" / "pg_ctl"), "status", "--pgdata", str(data_dir)]),
            capture_output=True, check=False,
        )  # fmt: skip
        assert status.returncode == 4  # no data directory: nothing running there
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes()
            except OSError:
                continue
            assert str(data_dir).encode() not in text, f"a process still runs: {text!r}"


def check(outcome: DrillOutcome, name: str) -> tuple[bool, str]:
    found = [c for c in outcome.checks if c.name == name]
    assert len(found) == 1, [c.name for c in outcome.checks]
    return found[0].passed, found[0].detail


@pytest.mark.parametrize("major", [18, 15])
def test_a_healthy_archive_passes_every_check_on_its_own_major(
    major: int,
    sources: dict[int, EmbeddedPostgres],
    installs: dict[int, Path],
    pgtools_dir: Path,
    work_dir: Path,
    tmp_path: Path,
    drill: Callable[..., DrillOutcome],
) -> None:
    archive = make_archive(sources[major], pgtools_dir, tmp_path, SHOP)
    feed = Watched(work_dir, feeding(archive))
    smoke = [
        SmokeQuery(sql="SELECT count(*) FROM sales.orders", expect="value = 250"),
        SmokeQuery(sql="SELECT name FROM items ORDER BY price DESC", expect="value = 'cake'"),
        SmokeQuery(sql="SELECT * FROM cheap", expect="rows = 2"),
        # The drill's server listens on no TCP port.
        SmokeQuery(
            sql="SELECT setting FROM pg_settings WHERE name = 'listen_addresses'",
            expect="value = ''",
        ),
    ]

    outcome = drill(major, feed, smoke_queries=smoke)

    assert [c.name for c in outcome.checks] == [
        "restore", "objects", "amcheck", "row_counts", "smoke 1", "smoke 2", "smoke 3", "smoke 4",
    ]  # fmt: skip
    assert outcome.passed, outcome.checks
    assert outcome.server_version.startswith(f"{major}.")
    assert outcome.tables == sorted(SHOP_TABLES, key=lambda t: (t.schema, t.table))
    assert outcome.restore_seconds > 0
    assert_phases_add_up(outcome)
    assert check(outcome, "objects")[1].startswith("all ")
    assert check(outcome, "objects")[1].endswith(
        "objects of the table of contents are in the restored database"
    )
    transaction_timeout = any("transaction_timeout" in w for w in outcome.warnings)
    assert transaction_timeout is (major < 17)
    assert_nothing_left(work_dir, installs[major], feed.data_dirs)


def test_another_databases_archive_fails_against_what_was_expected(
    postgres: EmbeddedPostgres,
    pgtools_dir: Path,
    tmp_path: Path,
    drill: Callable[..., DrillOutcome],
) -> None:
    other = make_archive(
        postgres,
        pgtools_dir,
        tmp_path,
        "CREATE TABLE items (id int); INSERT INTO items VALUES (1);",
    )

    outcome = drill(
        18, feeding(other), expected_rows=SHOP_TABLES,
        expected_objects=["TABLE sales orders", "INDEX public items_guarded"],
    )  # fmt: skip

    assert check(outcome, "restore")[0]
    assert check(outcome, "objects") == (
        False,
        "2 of 3 objects missing: TABLE sales orders; INDEX public items_guarded",
    )
    assert check(outcome, "row_counts") == (
        False,
        "3 tables differ: public.armed is missing (0 rows expected); "
        "public.items: 1 row, 3 expected; sales.orders is missing (250 rows expected)",
    )
    assert not outcome.passed


def test_a_truncated_archive_fails_the_restore(
    postgres: EmbeddedPostgres,
    installs: dict[int, Path],
    pgtools_dir: Path,
    work_dir: Path,
    tmp_path: Path,
    drill: Callable[..., DrillOutcome],
) -> None:
    archive = make_archive(postgres, pgtools_dir, tmp_path, SHOP)
    feed = Watched(work_dir, feeding(archive, limit=archive.stat().st_size * 2 // 3))

    outcome = drill(18, feed)

    passed, detail = check(outcome, "restore")
    assert not passed
    assert detail.startswith("pg_restore failed")
    assert not outcome.passed
    assert_nothing_left(work_dir, installs[18], feed.data_dirs)


def test_an_archive_that_needs_a_superuser_fails_the_restore_by_name(
    postgres: EmbeddedPostgres,
    pgtools_dir: Path,
    tmp_path: Path,
    drill: Callable[..., DrillOutcome],
) -> None:
    archive = make_archive(postgres, pgtools_dir, tmp_path, "CREATE EXTENSION dblink;")

    outcome = drill(18, feeding(archive))

    passed, detail = check(outcome, "restore")
    assert not passed
    assert 'permission denied to create extension "dblink"' in detail
    assert check(outcome, "objects") == (
        False,
        "1 of 1 objects missing: EXTENSION - dblink",
    )


def test_an_archive_that_is_not_one_fails_the_restore_and_the_objects(
    work_dir: Path, drill: Callable[..., DrillOutcome]
) -> None:
    outcome = drill(18, lambda sink: sink.write(b"not an archive"))

    assert not check(outcome, "restore")[0]
    passed, detail = check(outcome, "objects")
    assert not passed
    assert "table of contents" in detail
    assert list(work_dir.iterdir()) == []


def test_a_failing_smoke_query_fails_the_drill_naming_the_query_and_writes_are_refused(
    postgres15: EmbeddedPostgres,
    pgtools_dir: Path,
    tmp_path: Path,
    drill: Callable[..., DrillOutcome],
) -> None:
    archive = make_archive(postgres15, pgtools_dir, tmp_path, SHOP)
    smoke = [
        SmokeQuery(sql="SELECT count(*)\n  FROM items", expect="value >= 10"),
        SmokeQuery(sql="DELETE FROM items RETURNING id", expect="rows >= 0"),
        SmokeQuery(sql="COMMIT; DELETE FROM items", expect="rows >= 0"),
        SmokeQuery(sql="SELECT pg_sleep(30)", expect="rows = 1"),
        SmokeQuery(sql="SELECT count(*) FROM items", expect="value = 3"),
    ]

    outcome = drill(15, feeding(archive), smoke_queries=smoke)

    assert check(outcome, "smoke 1") == (
        False,
        "SELECT count(*) FROM items: value '3', expected value >= 10",
    )
    passed, detail = check(outcome, "smoke 2")
    assert not passed
    assert detail.startswith("DELETE FROM items RETURNING id: failed: ")
    assert "read-only transaction" in detail
    passed, detail = check(outcome, "smoke 3")
    assert not passed
    assert "read-only transaction" in detail
    passed, detail = check(outcome, "smoke 4")
    assert not passed
    assert "statement timeout" in detail
    assert check(outcome, "smoke 5")[0]  # every row still there
    assert [c.name for c in outcome.checks if not c.passed] == [
        "smoke 1", "smoke 2", "smoke 3", "smoke 4",
    ]  # fmt: skip


def test_an_interrupted_drill_leaves_nothing_behind(
    postgres: EmbeddedPostgres,
    installs: dict[int, Path],
    pgtools_dir: Path,
    work_dir: Path,
    tmp_path: Path,
    drill: Callable[..., DrillOutcome],
) -> None:
    archive = make_archive(postgres, pgtools_dir, tmp_path, SHOP)
    calls = []

    def interrupted(sink: IO[bytes]) -> None:
        calls.append(sink)
        if len(calls) == 2:  # the restore, after the table of contents was read
            # The task stopped (SIGTERM): the test harness, as the task, raises
            # KeyboardInterrupt in the main thread, here while pg_restore runs.
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        feeding(archive)(sink)

    feed = Watched(work_dir, interrupted)
    with pytest.raises(KeyboardInterrupt):
        drill(18, feed)

    assert_nothing_left(work_dir, installs[18], feed.data_dirs)


def test_the_checks_on_a_running_cluster_whose_objects_a_superuser_owns(
    postgres15: EmbeddedPostgres, database_name: str
) -> None:
    """A recovered cluster holds the source's roles: a superuser's index expression, view
    and event trigger must not run as a superuser in the checks."""
    postgres15.create_database(database_name)
    postgres15.psql(
        SHOP
        + f"""
        CREATE FUNCTION refuse() RETURNS event_trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'an event trigger ran'; END $$;
        CREATE EVENT TRIGGER no_ddl ON ddl_command_start EXECUTE FUNCTION refuse();
        DROP ROLE IF EXISTS pgbackups_drill;
        CREATE ROLE pgbackups_drill SUPERUSER;
        GRANT pg_write_all_data TO pgbackups_drill;
        ALTER ROLE pgbackups_drill SET work_mem = '1MB';
        ALTER ROLE ALL IN DATABASE {database_name} SET statement_timeout = '1ms';
        ALTER DATABASE {database_name} SET default_transaction_read_only = on;
        """,
        database_name,
    )
    cluster = RecoveredCluster(
        data_dir=postgres15.data_dir, install=postgres15.install,
        socket_dir=postgres15.socket_dir, port=postgres15.port, user=postgres15.user,
        log_file=postgres15.log_file, major=15,
    )  # fmt: skip

    checks, tables = check_server(
        handle_of(cluster), database_name,
        smoke_queries=[
            SmokeQuery(sql="SELECT * FROM cheap", expect="rows = 2"),
            # The source's role of that name: plain, its memberships and settings gone.
            SmokeQuery(
                sql="SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                expect="value = false",
            ),
            SmokeQuery(sql="SELECT pg_has_role('pg_write_all_data', 'MEMBER')", expect="value = false"),
            SmokeQuery(sql="SHOW work_mem", expect="value = '4MB'"),
            SmokeQuery(sql="SHOW statement_timeout", expect="value = '10s'"),
        ],
        expected_objects=["TABLE public items", "VIEW public cheap", "TABLE public gone"],
        expected_rows=SHOP_TABLES,
    )  # fmt: skip

    results = {c.name: (c.passed, c.detail) for c in checks}
    assert results["objects"] == (False, "1 of 3 objects missing: TABLE public gone")
    assert results["amcheck"][0], results["amcheck"]
    assert results["row_counts"][0], results["row_counts"]
    assert all(results[f"smoke {n}"][0] for n in range(1, 6)), results
    assert tables == SHOP_TABLES
    owners = postgres15.psql(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relname IN "
        "('items', 'cheap', 'orders')",
        database_name,
    )
    assert owners == DRILL_ROLE


def test_a_work_dir_the_server_cannot_use_is_refused_clearly(
    work_dir: Path, installs: dict[int, Path]
) -> None:
    deep = work_dir / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    for folder in (deep, deep.parent):
        folder.chmod(0o711)

    with (
        pytest.raises(DrillFailed, match="too long for a unix socket"),
        throwaway_server(installs[18], deep),
    ):
        pass

    assert list(deep.iterdir()) == []


def assert_phases_add_up(outcome: DrillOutcome) -> None:
    """Every phase timed, end to end: they add up to the whole drill; the restore's is the
    restore check's, and the other checks fit in the checks'."""
    assert list(outcome.phases) == [*DRILL_PHASES, "total"]
    assert all(seconds >= 0 for seconds in outcome.phases.values())
    assert sum(outcome.phases[name] for name in DRILL_PHASES) == pytest.approx(
        outcome.phases["total"]
    )
    [restore, *checks] = outcome.checks
    assert outcome.phases["restore"] == restore.seconds == outcome.restore_seconds
    assert all(check.seconds > 0 for check in checks), checks
    assert sum(check.seconds for check in checks) <= outcome.phases["checks"]
