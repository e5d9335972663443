"""`login`: the API URL and token, checked and saved."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.unit.cli_commands.fakes import API, FakeApi, run

pytestmark = pytest.mark.unit


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
