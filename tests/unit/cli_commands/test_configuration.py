"""Which API and token every command uses, and the errors common to all commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgbackups_cli import main
from tests.unit.cli_commands.fakes import API, TOKEN, USING, FakeApi, database, error, run

pytestmark = pytest.mark.unit


def test_which_api_is_said(api: FakeApi) -> None:
    result = CliRunner().invoke(main, ["databases"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stderr == USING


def test_the_token_goes_as_a_bearer_header(api: FakeApi) -> None:
    assert run("databases").exit_code == 0
    assert api.headers[0]["Authorization"] == f"Bearer {TOKEN}"


def test_nothing_configured(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGBACKUPS_API_URL")
    monkeypatch.delenv("PGBACKUPS_TOKEN")
    result = run("backups")
    assert result.exit_code == 1
    assert result.stderr.startswith(" !     No API configured. Run `pgbackups login")
    assert "`pgbackups local`" in result.stderr
    assert api.calls == []


def test_the_local_stack_file_is_used_when_nothing_else_is(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PGBACKUPS_API_URL")
    monkeypatch.delenv("PGBACKUPS_TOKEN")
    stack = tmp_path / ".pgbackups-local" / "stack.json"
    stack.parent.mkdir()
    stack.write_text(json.dumps({"api_url": API, "token": "stack-token", "pid": os.getpid()}))
    result = CliRunner().invoke(main, ["databases"], catch_exceptions=False)
    assert (result.exit_code, result.stderr) == (0, "")  # this folder's stack goes without saying
    assert api.headers[0]["Authorization"] == "Bearer stack-token"


def test_a_refused_token(api: FakeApi) -> None:
    api.routes["GET /v1/databases"] = (403, {"message": "Forbidden"})
    result = run("databases")
    assert result.exit_code == 1
    assert result.stderr == (
        f" !     The API at {API} refused the token from PGBACKUPS_TOKEN (403). "
        "Check it, or save the right one with `pgbackups login`.\n"
    )


def test_a_missing_token_is_refused_too(api: FakeApi) -> None:
    api.routes["GET /v1/databases"] = (401, {"message": "Unauthorized"})
    result = run("databases", "--token", "wrong")
    assert result.exit_code == 1
    assert "refused the token from --token (401)" in result.stderr


def test_an_unreachable_api(api: FakeApi) -> None:
    api.unreachable = True
    result = run("backups", "-d", "shop")
    assert result.exit_code == 1
    assert (
        result.stderr == f" !     Cannot reach the API at {API}: [Errno 111] Connection refused\n"
    )


def test_the_apis_error_message_is_shown(api: FakeApi) -> None:
    api.routes["GET /v1/databases/crm/backups"] = error(
        404, "database_not_found", "no database named crm"
    )
    result = run("backups", "-d", "crm")
    assert (result.exit_code, result.stderr, result.stdout) == (
        1,
        " !     no database named crm\n",
        "",
    )


def test_a_database_is_needed_when_there_are_several(api: FakeApi) -> None:
    api.routes["GET /v1/databases"] = (200, {"databases": [database("shop"), database("crm")]})
    result = run("backups")
    assert result.exit_code == 2
    assert "There are 2 databases: pass --database/-d with one of crm, shop" in result.stderr


def test_no_database_at_all(api: FakeApi) -> None:
    api.routes["GET /v1/databases"] = (200, {"databases": []})
    result = run("backups-create")
    assert result.exit_code == 1
    assert result.stderr == (
        " !     No database registered yet. Add one with `pgbackups databases-add NAME --url -`.\n"
    )


def test_database_flag_before_and_on_the_command(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("env", "global", "command"):
        api.routes[f"GET /v1/databases/{name}/backups"] = (
            200,
            {"backups": [], "next_cursor": None},
        )
    monkeypatch.setenv("PGBACKUPS_DATABASE", "env")
    assert run("backups").stdout.startswith("-----> No backups of env yet")
    assert run("-d", "global", "backups").stdout.startswith("-----> No backups of global yet")
    result = run("--database", "global", "backups", "-d", "command")
    assert result.stdout.startswith("-----> No backups of command yet")


def test_a_malformed_database_name_is_a_usage_error(api: FakeApi) -> None:
    result = run("backups", "-d", "Not A Name")
    assert result.exit_code == 2
    assert "--database: the database name must be 1 to 63 lowercase" in result.stderr
    assert api.calls == []
