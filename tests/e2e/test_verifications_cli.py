"""`backups-verify` through the installed CLI and the local stack: the drill of the demo
database's backup, or of a point in time of continuous backups, runs on the stack's
Fargate runner (a local task that starts a throwaway server), and the CLI follows it
and prints its checks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import psycopg2
import pytest
import requests

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import Cli, RunningStack, lines, start_stack
from tests.e2e.test_pitr_cli import capture, commit, enable_continuous_backups

pytestmark = pytest.mark.e2e

SMOKE_SQL = "SELECT id FROM customers ORDER BY id LIMIT 1"


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The stack with its demo database (this module's `cli` runs against it)."""
    stack = start_stack(
        tmp_path_factory.mktemp("verify-stack"),
        "--demo", "--demo-size-mb", "1", "--backup-lock", "off",
    )  # fmt: skip
    try:
        yield stack
    finally:
        code = stack.stop()
        assert code == 0, stack.log()[-3000:]


def demo_rows(stack: RunningStack) -> tuple[int, int]:
    """The demo database's tables and rows, counted on the source."""
    with psycopg2.connect(stack.info["demo_database_url"]) as connection:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1"
        )
        tables = [name for (name,) in cursor.fetchall()]
        rows = 0
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {table}")  # quoted by format %I
            rows += cursor.fetchone()[0]
    connection.close()
    return len(tables), rows


def test_backups_verify_passes_on_the_demo_database_and_prints_its_checks(
    cli: Cli, local_stack: RunningStack
) -> None:
    created = cli("backups-create", "-d", "demo")
    assert created.returncode == 0, created.stderr
    configured = cli(
        "verifications-config", "-d", "demo", "--smoke-query", SMOKE_SQL, "--expect", "rows = 1"
    )
    assert configured.returncode == 0, configured.stderr

    result = cli("backups-verify", "-d", "demo")

    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)
    printed = lines(result.stdout)
    backup_id = cli.api_get("/v1/databases/demo/backups/latest")["id"]
    assert printed[0] == f"-----> Verifying backup {backup_id} of demo in a throwaway server"
    for check in ("restore", "objects", "amcheck", "row_counts"):
        assert any(line.startswith(f"       \N{CHECK MARK} {check}") for line in printed), printed
    assert f"       \N{CHECK MARK} smoke 1: {SMOKE_SQL}: 1 row, expected rows = 1" in printed
    tables, rows = demo_rows(local_stack)
    assert any(
        line.startswith(f"       Restored {tables} tables, {rows:,} rows in ") for line in printed
    ), printed
    assert printed[-1] == "-----> Verification passed"

    (verification,) = json.loads(cli("verifications", "-d", "demo", "--json").stdout)[
        "verifications"
    ]
    assert verification["status"] == "passed"
    assert verification["backup_id"] == backup_id
    info = cli("verifications-info", "-d", "demo")
    assert "Status:         passed" in lines(info.stdout)
    link = cli("verifications-info", "-d", "demo", "--report-url")
    assert link.returncode == 0, link.stderr
    report = requests.get(link.stdout.strip(), timeout=30)
    assert report.status_code == 200
    assert hashlib.sha256(report.content).hexdigest() == verification["report_sha256"]
    backup = cli.api_get(f"/v1/databases/demo/backups/{backup_id}")
    assert backup["verification"] == "passed"


@pytest.fixture
def server() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(name="verify-pitr").init().start()
    try:
        yield server
    finally:
        server.destroy()


def test_backups_verify_of_the_latest_point_in_time_recovers_it_and_checks_it(
    cli: Cli, server: EmbeddedPostgres
) -> None:
    server.create_database("orders")
    server.psql("CREATE TABLE events (id int PRIMARY KEY)", "orders")
    enable_continuous_backups(cli, server, "orders")
    capture(cli)
    for row in (1, 2, 3):
        commit(server, row)
    capture(cli)

    result = cli("backups-verify", "-d", "orders", "--time", "latest")

    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)
    printed = lines(result.stdout)
    assert printed[0] == "-----> Verifying the latest point in time of orders in a throwaway server"
    assert "       \N{CHECK MARK} restore: " in "\n".join(printed)
    assert any(line.startswith("       Restored 1 table, 3 rows in ") for line in printed), printed
    assert printed[-1] == "-----> Verification passed"
    info = lines(cli("verifications-info", "-d", "orders").stdout)
    assert "Restored:       the latest point in time" in info
    assert "Status:         passed" in info
