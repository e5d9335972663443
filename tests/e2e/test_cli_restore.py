"""`backups-restore` through the installed CLI: the target is checked before anything is
downloaded, progress is shown, URLs need not be on the command line, and a restore into
PostgreSQL 15 (Debian's, as most servers out there are older than pg_restore 18) succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgbackups_local.postgres import EmbeddedPostgres, free_port
from tests.e2e.conftest import ROWS_SQL, Cli, Source, lines

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backed_up(cli: Cli, source: Source) -> str:
    """The source registered on this module's stack, with one done backup; its name."""
    result = cli("databases-add", source.name, "--url", "-", input=source.url + "\n")
    assert result.returncode == 0, result.stderr
    created = cli("backups-create", "-d", source.name)
    assert created.returncode == 0, created.stderr
    return source.name


def test_restore_into_postgresql_15_succeeds_and_says_what_it_ignored(
    cli: Cli, folder: Path, source: Source, backed_up: str, postgres15: EmbeddedPostgres
) -> None:
    target = postgres15.create_database("restored")
    result = cli(
        "backups-restore", "-d", backed_up, "--target-url", "-", "--yes", input=target + "\n"
    )
    assert result.returncode == 0, result.stderr
    version = postgres15.psql("SHOW server_version").split()[0]
    assert lines(result.stdout)[-2:] == [
        f"       PostgreSQL {version} does not know transaction_timeout (pg_restore 18 sets "
        "it): that one error was ignored, nothing else failed.",
        "-----> Restore successfully finished",
    ]
    assert postgres15.psql(ROWS_SQL, "restored") == source.rows()
    assert postgres15.password not in result.stdout + result.stderr


def test_a_real_error_in_postgresql_15_still_fails(
    cli: Cli, folder: Path, backed_up: str, postgres15: EmbeddedPostgres
) -> None:
    target = postgres15.create_database("blocked")
    # A view of the target's own on `items`: --clean cannot drop the table it depends on.
    postgres15.psql(
        "CREATE TABLE items (id bigint); CREATE VIEW keeps_items AS SELECT * FROM items;",
        "blocked",
    )
    result = cli("backups-restore", "-d", backed_up, "--yes", PGBACKUPS_TARGET_URL=target)
    assert result.returncode == 1
    assert " !     pg_restore failed (exit code 1):" in result.stderr
    assert "cannot drop table public.items because other objects depend on it" in result.stderr
    assert lines(result.stdout)[-1] != "-----> Restore successfully finished"


@pytest.mark.parametrize("problem", ["host", "password", "database"])
def test_the_target_is_checked_before_the_download(
    cli: Cli, folder: Path, backed_up: str, postgres: EmbeddedPostgres, problem: str
) -> None:
    port = postgres.port if problem != "host" else free_port()
    password = "wrong-password-9" if problem == "password" else postgres.password
    database = "no_such_db" if problem == "database" else "postgres"
    url = f"postgresql://postgres:{password}@127.0.0.1:{port}/{database}"
    result = cli("backups-restore", "-d", backed_up, "--target-url", "-", "--yes", input=url + "\n")
    assert (result.returncode, result.stdout) == (1, "")  # nothing selected, nothing downloaded
    reason = {
        "host": "Connection refused",
        "password": 'password authentication failed for user "postgres"',
        "database": 'database "no_such_db" does not exist',
    }[problem]
    assert result.stderr.startswith(
        f" !     cannot connect to postgresql://postgres:***@127.0.0.1:{port}/{database}: "
    )
    assert reason in result.stderr
    assert password not in result.stderr
    assert not list(folder.glob("*.pgsql"))


def test_restore_shows_its_progress_in_entries(
    cli: Cli, folder: Path, source: Source, backed_up: str, postgres: EmbeddedPostgres
) -> None:
    target = postgres.create_database("cli_progress")
    result = cli(
        "backups-restore", "-d", backed_up, "--yes",
        PGBACKUPS_TARGET_URL=target, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Running pg_restore: " in result.stderr
    assert " entries" in result.stderr
    assert source.rows("cli_progress") == source.rows()
    silent = cli("backups-restore", "-d", backed_up, "--yes", "-s", PGBACKUPS_TARGET_URL=target)
    assert (silent.returncode, silent.stderr) == (0, "")
    assert silent.stdout == "-----> Restore successfully finished\n"


def test_restore_only_one_table(
    cli: Cli, folder: Path, source: Source, backed_up: str, postgres: EmbeddedPostgres
) -> None:
    target = postgres.create_database("only_items")
    postgres.psql("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')", "only_items")
    result = cli(
        "backups-restore", "-d", backed_up, "--table", "items", "--yes", "-s",
        PGBACKUPS_TARGET_URL=target,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert postgres.psql(ROWS_SQL, "only_items") == source.rows()
    assert postgres.psql("SELECT to_regclass('public.expensive') IS NULL", "only_items") == "t"


def test_too_few_privileges_are_summed_up(
    cli: Cli, folder: Path, backed_up: str, postgres: EmbeddedPostgres
) -> None:
    postgres.create_database("locked")
    postgres.psql("DROP ROLE IF EXISTS reader; CREATE ROLE reader LOGIN PASSWORD 'Reader-pw-1'")
    url = f"postgresql://reader:Reader-pw-1@127.0.0.1:{postgres.port}/locked"
    result = cli("backups-restore", "-d", backed_up, "--yes", PGBACKUPS_TARGET_URL=url)
    assert result.returncode == 1
    errors = lines(result.stderr)
    assert errors[0].startswith(" !     pg_restore failed (exit code 1): ")
    assert errors[0].endswith(" errors, the first 3:")
    assert len(errors) < 15, "a summary, not every error"
    assert any(
        "Missing privileges: reader was refused (permission denied for schema public" in line
        for line in errors
    )
    assert "The target locked on 127.0.0.1:" in result.stderr and "is partial" in result.stderr
    assert "Reader-pw-1" not in result.stdout + result.stderr
