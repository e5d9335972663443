"""The fake API every command test talks to, and a backup it can download."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgbackups_cli import client, follow
from tests.unit.cli_commands.fakes import (
    API,
    ARCHIVE,
    NEW_ID,
    TOKEN,
    FakeApi,
    archive_link,
    backup,
    database,
)


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


@pytest.fixture
def downloadable(api: FakeApi) -> FakeApi:
    api.routes["GET /v1/databases/shop/backups/latest"] = (200, backup(NEW_ID))
    api.routes[f"GET /v1/databases/shop/backups/{NEW_ID}/archive"] = archive_link()
    return api
