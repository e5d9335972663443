"""`pgbackups status` for cron and CI: the databases that are not ok with their
reasons, exit 1 when one is failing, 0 otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.cli_commands.fakes import API, FakeApi, database, run

pytestmark = pytest.mark.unit

FAILED = {
    "code": "backup_failed",
    "severity": "failing",
    "message": "The last backup failed: pg_dump: error: connection refused. Check that the "
    "database is reachable with its registered URL, then trigger a manual backup.",
    "since": "2026-11-25T01:00:04Z",
}
LAGGING = {
    "code": "pitr_lagging",
    "severity": "warning",
    "message": "Continuous backups are 40 min behind (the limit is 15 min): a restore would "
    "lose the latest changes. Check that the WAL capture runs and reaches the server.",
    "since": "2026-11-25T09:15:00Z",
}


def health(status: str, *reasons: dict[str, Any]) -> dict[str, Any]:
    return {"status": status, "reasons": list(reasons), "since": "2026-11-25T09:40:00Z"}


def test_status_lists_the_databases_that_are_not_ok_and_fails_when_one_is_failing(
    api: FakeApi,
) -> None:
    api.routes["GET /v1/databases"] = (
        200,
        {
            "databases": [
                database("crm", health=health("warning", LAGGING)),
                database("shop", health=health("failing", FAILED)),
                database("wiki", health=health("ok")),
                database("new"),  # from an API that does not judge health
            ]
        },
    )

    result = run("status")

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:6] == [
        "=== pgbackups status",
        f"API:        {API}",
        "From:       PGBACKUPS_API_URL",
        "Token from: PGBACKUPS_TOKEN",
        "Server:     reachable, token accepted",
        "Databases:  crm, shop, wiki, new",
    ]
    assert lines[6:] == [
        "Health:     shop failing, crm warning",
        "",
        "=== shop is failing (since 2026-11-25 09:40 UTC)",
        "backup failed since 2026-11-25 01:00 UTC:",
        "  The last backup failed: pg_dump: error: connection refused. Check that the",
        "  database is reachable with its registered URL, then trigger a manual backup.",
        "",
        "=== crm needs attention (since 2026-11-25 09:40 UTC)",
        "continuous backups lagging since 2026-11-25 09:15 UTC:",
        "  Continuous backups are 40 min behind (the limit is 15 min): a restore would",
        "  lose the latest changes. Check that the WAL capture runs and reaches the",
        "  server.",
    ]
    assert result.stderr.endswith(" !     1 database is failing: shop\n")


def test_status_exits_0_with_warnings_only_and_says_when_all_are_ok(api: FakeApi) -> None:
    api.routes["GET /v1/databases"] = (
        200,
        {"databases": [database("crm", health=health("warning", LAGGING))]},
    )
    warned = run("status")
    assert warned.exit_code == 0
    assert "Health:     crm warning" in warned.stdout.splitlines()

    api.routes["GET /v1/databases"] = (
        200,
        {"databases": [database("crm", health=health("ok")), database("shop")]},
    )
    fine = run("status")
    assert fine.exit_code == 0
    assert "Health" not in fine.stdout
