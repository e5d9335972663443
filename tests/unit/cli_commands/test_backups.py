"""`backups` (the table, filters, pages) and `backups-info`."""

from __future__ import annotations

import json

import pytest

from tests.unit.cli_commands.fakes import (
    DIGEST,
    NEW_ID,
    OLD_ID,
    UNKNOWN_ID,
    FakeApi,
    backup,
    error,
    run,
)

pytestmark = pytest.mark.unit


def test_backups_table_newest_first(api: FakeApi) -> None:
    page = {
        "backups": [
            backup(NEW_ID, size=12_345_678),
            backup(OLD_ID, "error", created_at="2026-11-24T01:00:00Z", error="timed out"),
        ],
        "next_cursor": None,
    }
    api.routes["GET /v1/databases/shop/backups"] = (200, page)
    result = run("backups")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "=== Backups of shop"
    assert [cell.strip() for cell in lines[1].split("│")] == [
        "ID",
        "CREATED AT",
        "METHOD",
        "SIZE",
        "STATUS",
    ]
    assert [cell.strip() for cell in lines[3].split("│")] == [
        NEW_ID,
        "2026-11-25 03:40:12 UTC",
        "manual",
        "12.3 MB",
        "done",
    ]
    assert [cell.strip() for cell in lines[4].split("│")] == [
        OLD_ID,
        "2026-11-24 01:00:00 UTC",
        "manual",
        "-",
        "error",
    ]
    assert json.loads(run("backups", "--json").stdout) == page
    assert api.calls[-1][1] == {"limit": "20"}


def test_backups_filters_and_more_pages(api: FakeApi) -> None:
    page = {"backups": [backup(NEW_ID)], "next_cursor": "abc"}
    api.routes["GET /v1/databases/shop/backups"] = (200, page)
    result = run("backups", "--limit", "1", "--status", "done", "--method", "manual")
    assert result.stdout.endswith(
        "       The most recent backup shown; see more with --all, "
        "or the next page with --cursor abc\n"
    )
    assert api.calls[-1][1] == {"limit": "1", "status": "done", "method": "manual"}


def test_backups_info(api: FakeApi) -> None:
    api.routes[f"GET /v1/databases/shop/backups/{NEW_ID}"] = (200, backup(NEW_ID, runner="fargate"))
    result = run("backups-info", "--backup", NEW_ID.lower())
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"=== Backup {NEW_ID}"
    assert "Status:          done" in lines
    assert "Duration:        3s" in lines
    assert f"SHA-256:         {DIGEST}" in lines
    assert "Runner:          fargate" in lines
    info = json.loads(run("backups-info", "--backup", NEW_ID, "--json").stdout)
    assert info == backup(NEW_ID, runner="fargate")


def test_backups_info_defaults_to_the_newest_backup(api: FakeApi) -> None:
    failed = backup(NEW_ID, "error", error="pg_dump: error: connection lost\nsecond line")
    api.routes["GET /v1/databases/shop/backups"] = (200, {"backups": [failed], "next_cursor": None})
    result = run("backups-info")
    assert result.stdout.splitlines()[-2:] == [
        "Error:           pg_dump: error: connection lost",
        "                 second line",
    ]
    assert api.calls[-1][1] == {"limit": "1"}


@pytest.mark.parametrize("command", ["backups-info", "backups-download"])
def test_an_unknown_backup_id(api: FakeApi, command: str) -> None:
    message = f"no backup {UNKNOWN_ID} of shop"
    api.routes[f"GET /v1/databases/shop/backups/{UNKNOWN_ID}"] = error(
        404, "backup_not_found", message
    )
    api.routes[f"GET /v1/databases/shop/backups/{UNKNOWN_ID}/archive"] = error(
        404, "backup_not_found", message
    )
    result = run(command, "--backup", UNKNOWN_ID)
    assert (result.exit_code, result.stderr) == (1, f" !     {message}\n")


@pytest.mark.parametrize("command", ["backups-info", "backups-download", "backups-restore"])
def test_a_malformed_backup_id_is_a_usage_error(api: FakeApi, command: str) -> None:
    target = ["--target-url", "postgres://h/db"] if command == "backups-restore" else []
    result = run(command, "--backup", "nope", *target)
    assert result.exit_code == 2
    assert "'nope' is not a backup id" in result.stderr
