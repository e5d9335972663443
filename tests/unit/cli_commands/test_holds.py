"""`backups-hold` / `backups-release` against a fake API (the HTTP calls and what is printed)."""

from __future__ import annotations

import pytest

from tests.unit.cli_commands.fakes import OLD_ID, FakeApi, backup, error, run

pytestmark = pytest.mark.unit

PATH = f"/v1/databases/shop/backups/{OLD_ID}"


def test_hold_puts_the_backup_on_legal_hold(api: FakeApi) -> None:
    api.routes[f"GET {PATH}"] = (200, backup(OLD_ID))
    api.routes[f"PUT {PATH}/hold"] = (200, backup(OLD_ID, legal_hold=True))

    result = run("backups-hold", "--backup", OLD_ID)

    assert result.exit_code == 0, result.output
    assert api.routes_called()[-1] == f"PUT {PATH}/hold"
    assert result.stdout.splitlines() == [
        f"-----> Backup {OLD_ID} of shop is on legal hold",
        f"       It is kept until `pgbackups backups-release --backup {OLD_ID}`.",
    ]


def test_hold_of_latest_holds_the_backup_it_names(api: FakeApi) -> None:
    api.routes["GET /v1/databases/shop/backups/latest"] = (200, backup(OLD_ID))
    api.routes[f"PUT {PATH}/hold"] = (200, backup(OLD_ID, legal_hold=True))

    result = run("backups-hold", "--backup", "latest")

    assert result.exit_code == 0, result.output
    assert api.routes_called()[-1] == f"PUT {PATH}/hold"


def test_release_says_until_when_s3_still_locks_it(api: FakeApi) -> None:
    api.routes[f"GET {PATH}"] = (200, backup(OLD_ID, legal_hold=True))
    released = backup(OLD_ID, legal_hold=False, locked_until="2026-12-02T03:40:16Z")
    api.routes[f"DELETE {PATH}/hold"] = (200, released)

    result = run("backups-release", "--backup", OLD_ID)

    assert result.exit_code == 0, result.output
    assert api.routes_called()[-1] == f"DELETE {PATH}/hold"
    assert result.stdout.splitlines() == [
        f"-----> Backup {OLD_ID} of shop released from legal hold",
        "       S3 keeps it locked until 2026-12-02 03:40:16 UTC.",
    ]


def test_hold_needs_a_backup_and_says_why_the_api_refused(api: FakeApi) -> None:
    assert run("backups-hold").exit_code == 2
    api.routes[f"GET {PATH}"] = (200, backup(OLD_ID, status="running"))
    api.routes[f"PUT {PATH}/hold"] = error(
        409, "backup_not_done", f"backup {OLD_ID} is running: only a done backup is held"
    )

    result = run("backups-hold", "--backup", OLD_ID)

    assert result.exit_code == 1
    assert "only a done backup is held" in result.stderr


def test_info_shows_the_lock_and_the_hold(api: FakeApi) -> None:
    api.routes[f"GET {PATH}"] = (
        200,
        backup(OLD_ID, locked_until="2026-12-02T03:40:16Z", legal_hold=True),
    )

    result = run("backups-info", "--backup", OLD_ID)

    assert result.exit_code == 0, result.output
    assert "Locked until:" in result.stdout and "2026-12-02 03:40:16 UTC" in result.stdout
    assert [line.split() for line in result.stdout.splitlines() if "Legal hold" in line] == [
        ["Legal", "hold:", "yes"]
    ]
