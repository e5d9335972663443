"""What the CLI says of bad input: the API's own sentence, the API's ranges, and no
password taken from its command line.

The CLI runs against the real API resolver (`build_api`) answering in-process,
on services that fail the test if a route reaches them: a validation problem is
answered before any lookup, so what the CLI prints is what the API words.
"""

from __future__ import annotations

import io
import json
import re
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from click.testing import CliRunner, Result

from pgbackups.api.app import build_api
from pgbackups.domain.errors import BackupInProgress
from pgbackups.domain.models import RetentionPolicy
from pgbackups_cli import client, main
from pgbackups_cli.databases import RETENTION_RANGES
from pgbackups_cli.secret_input import refuse_password_on_argv
from tests.conftest import LambdaContext, load_event

pytestmark = pytest.mark.unit

API = "https://api.example.com"
DASH = "\N{EN DASH}"
SHOP = {
    "name": "shop",
    "schedule": {
        "enabled": True,
        "hour": 1,
        "timezone": "Europe/Paris",
        "next_run_at": "2026-11-26T00:00:00Z",
    },
    "retention": {"daily": 7, "weekly": 4, "monthly": 0, "manual": 10},
    "compression": "zstd:1",
    "runner": "auto",
    "has_replica": False,
    "created_at": "2026-11-20T10:00:00Z",
    "last_backup": None,
}


class Untouchable:
    """Services that fail the test if a route reaches them."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"services.{name} was used")


class InProcessApi:
    """urllib's urlopen, answered by the API's resolver; records the calls it answers."""

    def __init__(self, services: Any) -> None:
        self.resolver = build_api(services)
        self.calls: list[tuple[str, Any]] = []

    def __call__(self, request: urllib.request.Request, timeout: float) -> io.BytesIO:
        parts = urlsplit(request.full_url)
        body = request.data.decode() if isinstance(request.data, bytes) else None
        self.calls.append((f"{request.get_method()} {parts.path}", body and json.loads(body)))
        event = load_event("api-list-databases")
        event["rawPath"] = event["requestContext"]["http"]["path"] = parts.path
        event["requestContext"]["http"]["method"] = request.get_method()
        event["rawQueryString"] = parts.query
        event["queryStringParameters"] = dict(parse_qsl(parts.query)) or None
        event["headers"] = {"content-type": "application/json"}
        event["body"] = body
        answer = self.resolver.resolve(event, LambdaContext())
        payload = (answer["body"] or "").encode()
        if answer["statusCode"] >= 400:
            raise urllib.error.HTTPError(
                request.full_url, answer["statusCode"], "Refused", Message(), io.BytesIO(payload)
            )
        return io.BytesIO(payload)


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in (
        "XDG_CONFIG_HOME",
        "PGBACKUPS_CONFIG",
        "PGBACKUPS_DATABASE",
        "PGBACKUPS_DATABASE_URL",
        "PGBACKUPS_REPLICA_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGBACKUPS_API_URL", API)
    monkeypatch.setenv("PGBACKUPS_TOKEN", "t0ken")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, isolated: None) -> InProcessApi:
    fake = InProcessApi(Untouchable())
    monkeypatch.setattr(client, "urlopen", fake)
    return fake


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)


def api_message(path: str, method: str, body: dict[str, Any]) -> str:
    """What the API itself answers to `body`."""
    event = load_event("api-update-database")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["body"] = json.dumps(body)
    answer = build_api(Untouchable()).resolve(event, LambdaContext())
    assert answer["statusCode"] == 422, answer
    return str(json.loads(answer["body"])["error"]["message"])


# -- the API's words, the API's ranges ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "body"),
    [
        (["--keep-daily", "0"], {"retention": {"daily": 0}}),
        (["--keep-daily", "-1"], {"retention": {"daily": -1}}),
        (["--keep-manual", "501"], {"retention": {"manual": 501}}),
        (["--compression", "brotli"], {"compression": "brotli"}),
    ],
)
def test_databases_update_shows_the_apis_sentence_once(
    api: InProcessApi, args: list[str], body: dict[str, Any]
) -> None:
    result = run("databases-update", "shop", *args)

    expected = api_message("/v1/databases/shop", "PATCH", body)
    assert result.exit_code == 1, result.output
    assert result.stderr.endswith(f" !     {expected}\n"), result.stderr
    assert result.stderr.count(expected) == 1
    assert "Input should" not in result.stderr and "Value error" not in result.stderr
    assert api.calls == [("PATCH /v1/databases/shop", body)]


def test_a_page_size_out_of_bounds_gets_the_apis_sentence(api: InProcessApi) -> None:
    result = run("backups", "-d", "shop", "--limit", "0")

    assert result.exit_code == 1, result.output
    assert result.stderr.endswith(" !     limit: the page size must be at least 1\n")
    assert "(1\N{EN DASH}100)" in run("backups", "--help").output


def test_the_keep_options_state_the_apis_ranges() -> None:
    for name, field in RetentionPolicy.model_fields.items():
        bounds = {type(m).__name__: m for m in field.metadata}
        assert RETENTION_RANGES[name] == (bounds["Ge"].ge, bounds["Le"].le), name

    shown = CliRunner().invoke(main, ["databases-update", "--help"], terminal_width=200).output

    assert "x>=0" not in shown
    for name, (low, high) in RETENTION_RANGES.items():
        assert re.search(rf"--keep-{name} N\s+.*\({low}{DASH}{high}\)", shown), shown


def test_a_database_name_is_refused_in_the_apis_words(api: InProcessApi) -> None:
    result = run("databases-add", "Shop!", "--url", "-", input="postgres://u@h/db\n")
    api_says = api_message("/v1/databases", "POST", {"name": "Shop!", "url": "postgres://u@h/db"})

    assert result.exit_code == 2
    assert api_says.removeprefix("name: ") in result.stderr
    assert api.calls == []


def test_a_second_manual_backup_names_the_running_one_once(
    monkeypatch: pytest.MonkeyPatch, isolated: None
) -> None:
    running = "01KB3ZQ4Y6M7T2N8S0F1E9V5AB"

    class Services:
        class catalog:  # an attribute of the services, as a class
            @staticmethod
            def get_database(name: str, **_: Any) -> Any:
                raise BackupInProgress(name, running)

    fake = InProcessApi(Services())
    monkeypatch.setattr(client, "urlopen", fake)

    result = run("backups-create", "-d", "shop")

    assert result.exit_code == 1
    assert result.stderr.count(running) == 1, result.stderr


# -- passwords stay off the command line --------------------------------------------------

WITH_PASSWORD = [
    "postgres://u:secret@db.example.com/shop",
    "postgresql://u:secret@h1:5432,h2:5433/shop?sslmode=require",
    "postgres://u@db.example.com/shop?password=secret",
    "postgres://u@db.example.com/shop?sslmode=require&%70assword=secret",
]


@pytest.mark.parametrize("url", WITH_PASSWORD)
@pytest.mark.parametrize(
    "command",
    [
        ["databases-add", "shop", "--url"],
        ["databases-add", "shop", "--url", "-", "--replica-url"],
        ["databases-update", "shop", "--url"],
        ["databases-update", "shop", "--replica-url"],
    ],
)
def test_a_url_with_a_password_on_the_command_line_is_refused_saying_how(
    api: InProcessApi, command: list[str], url: str
) -> None:
    result = run(*command, url, input="postgres://u@h/db\n")

    option = command[-1]
    assert result.exit_code == 2, result.output
    assert f"{option}: " in result.stderr
    assert "secret" not in result.output
    assert f"{option} -" in result.stderr  # how: standard input,
    assert "PGBACKUPS_" in result.stderr  # the environment,
    assert "asked" in result.stderr  # or a hidden prompt
    assert api.calls == []


def test_a_url_without_a_password_may_be_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, isolated: None
) -> None:
    sent: list[Any] = []

    def answer(request: urllib.request.Request, timeout: float) -> io.BytesIO:
        sent.append(json.loads(request.data))  # type: ignore[arg-type]
        return io.BytesIO(json.dumps(SHOP).encode())

    monkeypatch.setattr(client, "urlopen", answer)
    url = "postgres://backup@db.example.com/shop?sslmode=verify-full&sslrootcert=system"

    result = run("databases-add", "shop", "--url", url)

    assert result.exit_code == 0, result.output
    assert sent == [{"name": "shop", "url": url}]


def test_a_password_in_the_environment_or_on_standard_input_is_taken(
    monkeypatch: pytest.MonkeyPatch, isolated: None
) -> None:
    sent: list[Any] = []

    def answer(request: urllib.request.Request, timeout: float) -> io.BytesIO:
        sent.append(json.loads(request.data))  # type: ignore[arg-type]
        return io.BytesIO(json.dumps(SHOP).encode())

    monkeypatch.setattr(client, "urlopen", answer)
    url = "postgres://u:secret@db.example.com/shop"

    from_env = run("databases-add", "shop", env={"PGBACKUPS_DATABASE_URL": url})
    from_stdin = run("databases-update", "shop", "--replica-url", "-", input=url + "\n")

    assert (from_env.exit_code, from_stdin.exit_code) == (0, 0), (from_env, from_stdin)
    assert sent == [{"name": "shop", "url": url}, {"replica_url": url}]


def test_the_shared_refusal_names_the_option_and_never_the_password() -> None:
    import click

    refuse_password_on_argv("--target-url", "postgres://u@h/db")  # no password: nothing said
    with pytest.raises(click.UsageError) as refused:
        refuse_password_on_argv("--target-url", "postgres://u:hunter2@h/db")

    assert refused.value.message.startswith("--target-url: ")
    assert "hunter2" not in refused.value.message
    assert "--target-url -" in refused.value.message
