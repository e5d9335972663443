"""A fake API for the CLI's commands: urllib answered in-process, canned answers, every call
recorded; and `run`, the CLI as a user runs it."""

from __future__ import annotations

import hashlib
import io
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from click.testing import CliRunner, Result

from pgbackups_cli import main

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


def archive_link(**changes: Any) -> tuple[int, Any]:
    return 200, {
        "download_url": f"{STORAGE}/bucket/archive?X-Amz-Signature=abc",
        "expires_at": "2026-11-25T04:00:00Z",
        "filename": "20261125034012_shop.pgsql",
        "size": len(ARCHIVE),
        "sha256": DIGEST,
        **changes,
    }


VERIFICATION_ID = "01KB40000000000000000000VF"
VERIFICATION_CHECKS = [
    {"name": "restore", "passed": True, "detail": "12 entries restored"},
    {"name": "objects", "passed": True, "detail": "every object of the archive is there"},
    {"name": "amcheck", "passed": True, "detail": "4 tables and 6 indexes clean"},
    {"name": "row_counts", "passed": True, "detail": "4 tables, 1,203 rows"},
]


def verification(status: str, **changes: Any) -> dict[str, Any]:
    """A drill of backup NEW_ID of shop as the API returns it, in `status`."""
    ended = status in ("passed", "failed")
    return {
        "id": VERIFICATION_ID,
        "database": "shop",
        "kind": "backup",
        "backup_id": NEW_ID,
        "target_time": None,
        "status": status,
        "runner": "fargate" if status != "scheduled" else None,
        "created_at": "2026-11-25T05:00:00Z",
        "started_at": "2026-11-25T05:00:02Z" if status != "scheduled" else None,
        "finished_at": "2026-11-25T05:00:40Z" if ended else None,
        "restore_seconds": 3.24 if ended else None,
        # As DynamoDB may give a map back: in any order.
        "phases": (
            {
                "stop": 0.21,
                "total": 5.1,
                "restore": 3.24,
                "contents": 0.35,
                "start": 0.9,
                "checks": 0.4,
            }
            if ended
            else {}
        ),
        "server_version": "18.1" if ended else None,
        "source_version": "18.1" if ended else None,
        "checks": VERIFICATION_CHECKS if ended else [],
        "tables": 4 if ended else None,
        "rows": 1203 if ended else None,
        "report_key": (
            f"databases/shop/backups/{NEW_ID}.verification-{VERIFICATION_ID}.json"
            if ended
            else None
        ),
        "report_sha256": "ab" * 32 if ended else None,
        "error": None,
        **changes,
    }
