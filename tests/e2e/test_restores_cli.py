"""`restores-create` through the installed CLI and the local stack: the restore runs in
the stack (the backup function's runtime), the CLI follows it to the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import ROWS_SQL, Cli, Source, lines

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backed_up(cli: Cli, source: Source) -> str:
    result = cli("databases-add", source.name, "--url", "-", input=source.url + "\n")
    assert result.returncode == 0, result.stderr
    created = cli("backups-create", "-d", source.name)
    assert created.returncode == 0, created.stderr
    return source.name


def test_restores_create_runs_in_the_stack_and_is_followed_to_done(
    cli: Cli, folder: Path, source: Source, backed_up: str, postgres15: EmbeddedPostgres
) -> None:
    target = postgres15.create_database("restored_by_stack")

    result = cli(
        "restores-create", "-d", backed_up, "--backup", "latest", "--target-url", "-", "--yes",
        input=target + "\n",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[-1] == "-----> Restore successfully finished"
    assert postgres15.psql(ROWS_SQL, "restored_by_stack") == source.rows()
    assert postgres15.password not in result.stdout + result.stderr
    listed = cli("restores", "-d", backed_up, "--json")
    (restore,) = json.loads(listed.stdout)["restores"]
    assert restore["status"] == "done"
    assert restore["target"] == f"127.0.0.1:{postgres15.port}/restored_by_stack"
    info = cli("restores-info", "-d", backed_up)
    assert info.returncode == 0
    assert "done" in info.stdout
    assert postgres15.password not in listed.stdout + info.stdout


def test_restores_create_refuses_a_wrong_password_and_changes_nothing(
    cli: Cli, folder: Path, backed_up: str, postgres15: EmbeddedPostgres
) -> None:
    postgres15.create_database("untouched")
    url = f"postgresql://postgres:wrong-pw-7@127.0.0.1:{postgres15.port}/untouched"

    result = cli(
        "restores-create", "-d", backed_up, "--backup", "latest", "--target-url", "-", "--yes",
        input=url + "\n",
    )  # fmt: skip

    assert result.returncode == 1
    assert 'password authentication failed for user "postgres"' in result.stderr
    assert "wrong-pw-7" not in result.stderr
    assert (
        postgres15.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", "untouched")
        == "0"
    )
