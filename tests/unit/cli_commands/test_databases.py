"""`databases`, `databases-add`, `databases-remove`."""

from __future__ import annotations

import json

import pytest

from tests.unit.cli_commands.fakes import NEW_ID, FakeApi, database, error, run

pytestmark = pytest.mark.unit


def test_databases(api: FakeApi) -> None:
    last = {"id": NEW_ID, "status": "done", "created_at": "2026-11-25T03:40:12Z", "size": 10}
    listing = {"databases": [database("shop", last_backup=last, has_replica=True), database("crm")]}
    api.routes["GET /v1/databases"] = (200, listing)
    result = run("databases")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "=== Databases"
    assert [cell.strip() for cell in lines[1].split("│")] == [
        "NAME",
        "SCHEDULE",
        "LAST BACKUP",
        "REPLICA",
    ]
    assert [cell.strip() for cell in lines[3].split("│")] == [
        "shop",
        "daily at 1:00 Europe/Paris",
        "2026-11-25 03:40:12 UTC done",
        "yes",
    ]
    assert [cell.strip() for cell in lines[4].split("│")] == [
        "crm",
        "daily at 1:00 Europe/Paris",
        "none",
        "no",
    ]
    assert json.loads(run("databases", "--json").stdout) == listing


def test_no_databases(api: FakeApi) -> None:
    api.routes["GET /v1/databases"] = (200, {"databases": []})
    result = run("databases")
    assert result.stdout == (
        "-----> No databases yet. Add one with `pgbackups databases-add NAME --url -`.\n"
    )


def test_databases_add(api: FakeApi) -> None:
    api.routes["POST /v1/databases"] = (201, database("crm", has_replica=True))
    url = "postgres://app@db.example.com:5432/crm"  # no password: it may be on argv
    replica = "postgres://app@replica.example.com:5432/crm"
    result = run("databases-add", "crm", "--url", url, "--replica-url", replica)
    assert result.exit_code == 0
    assert result.stdout == (
        "-----> Database crm added\n"
        "       Periodic backups: daily at 1:00 Europe/Paris\n"
        "       Backups are taken from the replica when it is reachable\n"
    )
    assert api.calls[-1] == (
        "POST /v1/databases",
        None,
        {"name": "crm", "url": url, "replica_url": replica},
    )


def test_databases_add_refused_connection(api: FakeApi) -> None:
    api.routes["POST /v1/databases"] = error(
        422, "connection_failed", "url: cannot connect to postgres://app:***@db:5432/crm: timeout"
    )
    result = run("databases-add", "crm", "--url", "-", input="postgres://app:pw@db:5432/crm\n")
    assert result.exit_code == 1
    assert (
        result.stderr == " !     url: cannot connect to postgres://app:***@db:5432/crm: timeout\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Name", "--url", "postgres://h/db"], "NAME: the database name must be 1 to 63"),
        (["crm", "--url", "mysql://h/db"], "it must start with postgres:// or postgresql://"),
        (
            ["crm"],
            "--url is required: pass --url - and the URL on standard input, set PGBACKUPS_DATABASE_URL",
        ),
    ],
)
def test_databases_add_usage_errors(api: FakeApi, args: list[str], message: str) -> None:
    result = run("databases-add", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_databases_remove_asks_first(api: FakeApi) -> None:
    api.routes["GET /v1/databases/shop"] = (200, database("shop"))
    api.routes["DELETE /v1/databases/shop"] = (204, None)
    refused = run("databases-remove", "shop", input="n\n")
    assert refused.exit_code == 1
    assert "Remove database shop? [y/N]" in refused.stdout
    assert " !     WARNING: database shop will be removed" in refused.stderr
    assert refused.stderr.endswith(
        " !     Cancelled: nothing was changed (pass --yes to skip this question).\n"
    )
    assert "DELETE /v1/databases/shop" not in api.routes_called()

    agreed = run("databases-remove", "shop", input="y\n")
    assert agreed.exit_code == 0
    assert agreed.stdout.endswith("-----> Database shop removed\n")

    assert run("databases-remove", "shop", "--yes").stdout == "-----> Database shop removed\n"


def test_databases_remove_without_a_terminal_and_without_yes(api: FakeApi) -> None:
    api.routes["GET /v1/databases/shop"] = (200, database("shop"))
    result = run("databases-remove", "shop")
    assert result.exit_code == 1
    assert "DELETE /v1/databases/shop" not in api.routes_called()
