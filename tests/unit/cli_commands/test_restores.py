"""`restores-create`, `restores`, `restores-info` on the fake API (cli_commands.fakes):
what the CLI sends, how it follows the restore, what it prints and its exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pgbackups_cli import follow
from tests.unit.cli_commands.fakes import NEW_ID, FakeApi, error, run
from tests.unit.cli_commands.test_backups_restore import TARGET, TARGET_ENV

pytestmark = pytest.mark.unit

RESTORE_ID = "01KB40000000000000000000RS"
PATH = "/v1/databases/shop/restores"


def restore(status: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": RESTORE_ID,
        "kind": "backup",
        "backup_id": NEW_ID,
        "target_time": None,
        "target": "db.example.com:6543/restored",
        "tables": [],
        "schemas": [],
        "status": status,
        "runner": "lambda" if status != "scheduled" else None,
        "created_at": "2026-11-25T04:00:00Z",
        "started_at": "2026-11-25T04:00:01Z" if status != "scheduled" else None,
        "finished_at": "2026-11-25T04:00:09Z" if status in ("done", "error") else None,
        "duration_seconds": 8.0 if status in ("done", "error") else None,
        "progress": {"restored": 12 if status != "scheduled" else 0, "total": 12},
        "warnings": [],
        "error": None,
        **changes,
    }


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(follow, "POLL_SECONDS", 0)
    yield


def test_restores_create_sends_the_url_in_the_body_and_follows_to_done(
    api: FakeApi, quick: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.routes[f"POST {PATH}"] = (202, restore("scheduled"))
    states = iter([restore("running"), restore("done")])
    api.routes[f"GET {PATH}/{RESTORE_ID}"] = lambda _: (200, next(states))
    monkeypatch.setattr(follow.time, "sleep", lambda _: None)

    result = run(
        "restores-create", "--backup", "latest", "--table", "items", "--yes", env=TARGET_ENV
    )

    assert result.exit_code == 0, result.output
    (_, _, body) = api.calls[-3]
    assert body == {"backup_id": "latest", "target_url": TARGET, "tables": ["items"], "schemas": []}
    assert result.stdout.splitlines()[-1] == "-----> Restore successfully finished"
    assert "s3cret" not in result.output


def test_a_failed_restore_exits_1_with_its_reason_and_warnings(api: FakeApi, quick: None) -> None:
    api.routes[f"POST {PATH}"] = (202, restore("scheduled"))
    api.routes[f"GET {PATH}/{RESTORE_ID}"] = (
        200,
        restore(
            "error",
            error="pg_restore failed (exit code 1): 1 error",
            warnings=["the target may be partial: 3 of 12 entries of the archive were restored"],
        ),
    )

    result = run("restores-create", "--backup", NEW_ID, "--yes", env=TARGET_ENV)

    assert result.exit_code == 1
    assert "the target may be partial: 3 of 12" in result.stdout
    assert result.stderr.splitlines()[-1] == (
        " !     Restore failed: pg_restore failed (exit code 1): 1 error"
    )


def test_ctrl_c_stops_following_and_says_the_restore_goes_on(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.routes[f"POST {PATH}"] = (202, restore("scheduled"))
    api.routes[f"GET {PATH}/{RESTORE_ID}"] = (200, restore("running"))

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(follow.time, "sleep", interrupted)

    result = run("restores-create", "--backup", NEW_ID, "--yes", env=TARGET_ENV)

    assert result.exit_code == 130
    assert "the restore goes on" in result.stderr
    assert f"--restore {RESTORE_ID}" in result.stderr


def test_in_place_asks_again_and_sends_the_database_name(api: FakeApi, quick: None) -> None:
    answers = iter(
        [
            error(409, "confirmation_required", "the target is shop itself"),
            (202, restore("scheduled")),
        ]
    )
    api.routes[f"POST {PATH}"] = lambda _: next(answers)
    api.routes[f"GET {PATH}/{RESTORE_ID}"] = (200, restore("done"))

    refused = run("restores-create", "--backup", NEW_ID, env=TARGET_ENV, input="y\nn\n")
    assert refused.exit_code == 1
    assert "Cancelled: nothing was changed" in refused.stderr
    assert [body.get("confirm") for route, _, body in api.calls if route == f"POST {PATH}"] == [
        None
    ]

    answers = iter(
        [
            error(409, "confirmation_required", "the target is shop itself"),
            (202, restore("scheduled")),
        ]
    )
    accepted = run("restores-create", "--backup", NEW_ID, env=TARGET_ENV, input="y\ny\n")
    assert accepted.exit_code == 0, accepted.output
    posted = [body for route, _, body in api.calls if route == f"POST {PATH}"]
    assert [body.get("confirm") for body in posted[1:]] == [None, "shop"]


def test_a_password_on_the_command_line_is_refused_before_any_call(api: FakeApi) -> None:
    result = run("restores-create", "--backup", NEW_ID, "--target-url", TARGET, "--yes")
    assert result.exit_code == 2
    assert not [route for route, _, _ in api.calls if "restores" in route]
    assert "s3cret" not in result.output


def test_restores_and_restores_info(api: FakeApi) -> None:
    api.routes[f"GET {PATH}"] = (200, {"restores": [restore("done")], "next_cursor": None})
    listed = run("restores")
    assert listed.exit_code == 0
    assert RESTORE_ID in listed.stdout
    assert "db.example.com:6543/restored" in listed.stdout
    info = run("restores-info")
    assert info.exit_code == 0
    assert "12/12 entries" in info.stdout


def test_restores_create_to_a_point_in_time_sends_the_time_and_follows_it(
    api: FakeApi, quick: None
) -> None:
    moment = "2026-11-25T03:30:00Z"
    running = restore(
        "running", kind="point_in_time", backup_id=None, target_time=moment, runner="fargate",
        progress={"restored": 3, "total": 7},
    )  # fmt: skip
    api.routes[f"POST {PATH}"] = (
        202,
        restore("scheduled", kind="point_in_time", backup_id=None, target_time=moment),
    )
    states = iter(
        [running, running | {"status": "done", "progress": {"restored": 40, "total": None}}]
    )
    api.routes[f"GET {PATH}/{RESTORE_ID}"] = lambda _: (200, next(states))

    result = run("restores-create", "--time", "2026-11-25T04:30:00+01:00", "--yes", env=TARGET_ENV)

    assert result.exit_code == 0, result.output
    (_, _, body) = next(call for call in api.calls if call[0] == f"POST {PATH}")
    assert body == {"target_url": TARGET, "target_time": moment, "tables": [], "schemas": []}
    assert f"Restoring {moment} (point in time) of shop" in result.stdout
    assert result.stdout.splitlines()[-1] == "-----> Restore successfully finished"
    assert "40 entries" in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "give exactly one of --backup"),
        (["--backup", "latest", "--time", "latest"], "give exactly one of --backup"),
        (["--time", "2026-11-25 04:30"], "give the time zone"),
        (["--time", "yesterday"], "is not an RFC 3339 time"),
    ],
)
def test_restores_create_needs_one_source_and_a_time_with_its_zone(
    api: FakeApi, args: list[str], says: str
) -> None:
    result = run("restores-create", *args, "--yes", env=TARGET_ENV)
    assert result.exit_code == 2
    assert says in result.output
    assert not [route for route, _, _ in api.calls if "restores" in route]


def test_restores_info_of_a_point_in_time_shows_its_time_and_the_wal_fetched(api: FakeApi) -> None:
    shown = restore(
        "running", kind="point_in_time", backup_id=None, target_time="2026-11-25T03:30:00Z",
        progress={"restored": 3, "total": 7},
    )  # fmt: skip
    api.routes[f"GET {PATH}"] = (200, {"restores": [shown], "next_cursor": None})
    info = run("restores-info")
    assert info.exit_code == 0
    assert "2026-11-25T03:30:00Z (point in time)" in info.stdout
    assert "3/7 WAL files" in info.stdout
