"""`backups-create`: following a backup to its end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.cli_commands.fakes import MANUAL_ID, NEW_ID, FakeApi, backup, error, run

pytestmark = pytest.mark.unit


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


def test_ctrl_c_stops_following_and_says_the_backup_goes_on(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.routes["POST /v1/databases/shop/backups"] = (202, backup(MANUAL_ID, "scheduled"))
    api.routes[f"GET /v1/databases/shop/backups/{MANUAL_ID}"] = following("running")

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pgbackups_cli.follow.time.sleep", interrupted)

    result = run("backups-create")

    assert result.exit_code == 130
    assert result.stderr == (
        " !     Stopped following the backup; it goes on. Check it with "
        f"`pgbackups backups-info -d shop --backup {MANUAL_ID}`.\n"
    )
    assert [route for route in api.routes_called() if route.startswith("DELETE")] == []
