"""`pitr-enable`, `pitr-disable`, `pitr-window` against the fake API of test_cli_commands,
answering the continuous-backups object of the API (ranges, breaks, history kept) or an
older one without those fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pgbackups_cli import pitr_settings
from tests.unit.cli_commands.fakes import FakeApi, error, run

pytestmark = pytest.mark.unit

PITR = "/v1/databases/shop/pitr"
REPLICATION_URL = "postgresql://replicator:Repl-secret-9@db.example.com:5432/shop"
BASE_1 = "01KB3ZQ4Y6M7T2N8S0F1E9V5B1"
BASE_2 = "01KB3ZQ4Y6M7T2N8S0F1E9V5B2"


def pitr(**changes: Any) -> dict[str, Any]:
    """GET …/pitr as the API answers it: two ranges with a gap left by a dropped slot."""
    return {
        "enabled": True,
        "status": "ok",
        "broken_reason": None,
        "broken_since": None,
        "base_backup_every_days": 1,
        "window_days": 7,
        "recoverable_ranges": [
            {
                "from": "2026-12-05T16:19:00Z",
                "to": "2026-12-05T21:53:10Z",
                "base_backup_id": BASE_1,
            },
            {
                "from": "2026-12-05T22:25:00Z",
                "to": "2026-12-06T02:40:13Z",
                "base_backup_id": BASE_2,
            },
        ],
        "earliest_recoverable_at": "2026-12-05T16:19:00Z",
        "latest_recoverable_at": "2026-12-06T02:40:13Z",
        "breaks": [
            {
                "at": "2026-12-05T21:53:10Z",
                "reason": "the replication slot pgbackups_shop was dropped",
                "chain_id": "01KB3ZQ4Y6M7T2N8S0F1E9V5C1",
                "recovered_at": "2026-12-05T22:25:00Z",
                "gap_seconds": 1910.0,
            }
        ],
        "lag_seconds": 13.2,
        "last_archived_at": "2026-12-06T02:40:13Z",
        "last_archived_wal": "00000001000000000000002A",
        "history_kept_until": None,
        "base_backups": [],
        "base_backup_in_progress": None,
        "last_base_backup_error": None,
        **changes,
    }


OLDER_API = {
    key: value
    for key, value in pitr().items()
    if key
    not in (
        "recoverable_ranges",
        "broken_since",
        "breaks",
        "last_archived_wal",
        "history_kept_until",
    )
}


def put_bodies(api: FakeApi) -> list[Any]:
    return [body for route, _, body in api.calls if route == f"PUT {PITR}"]


# -- pitr-window --------------------------------------------------------------------------------


def test_the_window_shows_every_range_the_lag_the_last_wal_and_the_breaks(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (200, pitr())
    result = run("pitr-window", "-d", "shop")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:7] == [
        "=== Continuous backups of shop",
        "Status:            ok",
        "Recoverable:       2026-12-05 16:19:00 UTC to 2026-12-05 21:53:10 UTC",
        "                   2026-12-05 22:25:00 UTC to 2026-12-06 02:40:13 UTC",
        "Lag:               13 s behind",
        "Last archived WAL: 00000001000000000000002A at 2026-12-06 02:40:13 UTC",
        "Settings:          a base backup every 1 day, history kept 7 days",
    ]
    assert lines[7] == "=== Breaks"
    (row,) = [line for line in lines[8:] if line.startswith("2026")]
    assert [cell.strip() for cell in row.split("│")] == [
        "2026-12-05 21:53:10 UTC",
        "the replication slot pgbackups_shop was dropped",
        "31 min 50 s",
        "2026-12-05 22:25:00 UTC",
    ]


def test_a_break_shows_its_reason_since_when_and_that_it_lasts(api: FakeApi) -> None:
    reason = "could not connect to the server: connection refused"
    ongoing = {
        "at": "2026-12-06T02:41:00Z",
        "reason": reason,
        "chain_id": "01KB3ZQ4Y6M7T2N8S0F1E9V5C2",
        "recovered_at": None,
        "gap_seconds": None,
    }
    broken = pitr(
        status="broken", broken_reason=reason, broken_since="2026-12-06T02:41:00Z",
        breaks=[*pitr()["breaks"], ongoing],
    )  # fmt: skip
    api.routes[f"GET {PITR}"] = (200, broken)
    result = run("pitr-window", "-d", "shop")
    assert result.exit_code == 0, result.stderr
    assert f"Status:            broken since 2026-12-06 02:41:00 UTC: {reason}\n" in result.stdout
    last = [line for line in result.stdout.splitlines() if line.startswith("2026")][-1]
    assert [cell.strip() for cell in last.split("│")] == [
        "2026-12-06 02:41:00 UTC", reason, "ongoing", "-",
    ]  # fmt: skip


def test_an_older_api_without_ranges_or_breaks_shows_its_window(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (200, OLDER_API)
    result = run("pitr-window", "-d", "shop")
    assert result.exit_code == 0, result.stderr
    assert (
        "Recoverable:       2026-12-05 16:19:00 UTC to 2026-12-06 02:40:13 UTC\nLag:"
        in result.stdout
    )
    assert "Last archived WAL: 2026-12-06 02:40:13 UTC\n" in result.stdout
    assert "Breaks" not in result.stdout


def test_disabled_with_history_kept_says_until_when_and_shows_its_ranges(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (
        200,
        pitr(enabled=False, status="disabled", history_kept_until="2026-12-13T02:40:13Z"),
    )
    result = run("pitr-window", "-d", "shop")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "-----> Continuous backups are disabled for shop; history kept until "
        "2026-12-13 02:40:13 UTC.",
        "=== Recoverable ranges of shop",
        "Recoverable: 2026-12-05 16:19:00 UTC to 2026-12-05 21:53:10 UTC",
        "             2026-12-05 22:25:00 UTC to 2026-12-06 02:40:13 UTC",
    ]


def test_disabled_without_history_says_how_to_enable(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (
        200,
        pitr(enabled=False, status="disabled", recoverable_ranges=[], breaks=[]),
    )
    result = run("pitr-window", "-d", "shop")
    assert result.stdout.splitlines() == [
        "-----> Continuous backups are disabled for shop.",
        "       Enable them with `pgbackups pitr-enable -d shop`.",
    ]


def test_json_prints_the_api_object(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (200, pitr())
    result = run("pitr-window", "-d", "shop", "--json")
    assert json.loads(result.stdout) == pitr()


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.4, "0 s"), (13.2, "13 s"), (59.6, "1 min 0 s"), (247, "4 min 7 s"),
     (7500, "2 h 5 min"), (273_600, "3 d 4 h")],
)  # fmt: skip
def test_durations_in_words(seconds: float, words: str) -> None:
    assert pitr_settings.duration_words(seconds) == words
    assert pitr_settings.lag_words(seconds) == f"{words} behind"


# -- pitr-enable --------------------------------------------------------------------------------


def disabled() -> dict[str, Any]:
    return pitr(
        enabled=False, status="disabled", recoverable_ranges=[], breaks=[],
        earliest_recoverable_at=None, latest_recoverable_at=None, lag_seconds=None,
        last_archived_at=None, last_archived_wal=None,
    )  # fmt: skip


def test_enable_reads_the_replication_url_from_stdin_and_never_shows_it(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (200, disabled())
    api.routes[f"PUT {PITR}"] = lambda body: (200, pitr(recoverable_ranges=[], breaks=[]))
    result = run(
        "pitr-enable", "-d", "shop", "--replication-url", "-", input=REPLICATION_URL + "\n"
    )
    assert result.exit_code == 0, result.stderr
    assert put_bodies(api) == [
        {
            "enabled": True,
            "replication_url": REPLICATION_URL,
            "base_backup_every_days": 1,
            "window_days": 7,
        }
    ]
    assert result.stdout.splitlines() == [
        "-----> Continuous backups enabled for shop",
        "       Replication through the URL given",
        "       A base backup every 1 day, history kept 7 days",
        "       The first base backup is on its way: `pgbackups pitr-window -d shop` shows it.",
    ]
    assert "Repl-secret-9" not in result.output


def test_enable_takes_the_url_from_the_environment(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (200, disabled())
    api.routes[f"PUT {PITR}"] = (200, pitr())
    result = run(
        "pitr-enable", "-d", "shop", "--window-days", "14",
        env={"PGBACKUPS_REPLICATION_URL": REPLICATION_URL},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (body,) = put_bodies(api)
    assert body["replication_url"] == REPLICATION_URL and body["window_days"] == 14


def test_enable_refuses_a_password_on_the_command_line(api: FakeApi) -> None:
    result = run("pitr-enable", "-d", "shop", "--replication-url", REPLICATION_URL)
    assert result.exit_code == 2
    assert "--replication-url: this URL holds a password" in result.stderr
    assert "Repl-secret-9" not in result.output
    assert api.calls == []


def test_enable_without_a_url_off_a_terminal_uses_the_databases_own(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (200, disabled())
    api.routes[f"PUT {PITR}"] = (200, pitr())
    result = run("pitr-enable", "-d", "shop")
    assert result.exit_code == 0, result.stderr
    assert put_bodies(api) == [{"enabled": True, "base_backup_every_days": 1, "window_days": 7}]
    assert "Replication through the database's own URL" in result.stdout


def test_enable_on_a_terminal_asks_for_the_url_hidden(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pitr_settings, "is_interactive", lambda: True)
    api.routes[f"GET {PITR}"] = (200, disabled())
    api.routes[f"PUT {PITR}"] = (200, pitr())
    result = run("pitr-enable", "-d", "shop", input=REPLICATION_URL + "\n")
    assert result.exit_code == 0, result.stderr
    assert put_bodies(api)[0]["replication_url"] == REPLICATION_URL
    assert "empty: the database's own URL" in result.output
    assert "Repl-secret-9" not in result.output  # hidden input: not echoed


def test_enable_on_a_terminal_with_nothing_typed_uses_the_databases_own(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pitr_settings, "is_interactive", lambda: True)
    api.routes[f"GET {PITR}"] = (200, disabled())
    api.routes[f"PUT {PITR}"] = (200, pitr())
    result = run("pitr-enable", "-d", "shop", input="\n")
    assert result.exit_code == 0, result.stderr
    assert "replication_url" not in put_bodies(api)[0]


def test_changing_one_setting_keeps_the_others_and_the_url(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pitr_settings, "is_interactive", lambda: True)  # no question: enabled
    api.routes[f"GET {PITR}"] = (200, pitr(base_backup_every_days=3, window_days=7))
    api.routes[f"PUT {PITR}"] = (200, pitr(base_backup_every_days=3, window_days=14))
    result = run("pitr-enable", "-d", "shop", "--window-days", "14")
    assert result.exit_code == 0, result.stderr
    assert put_bodies(api) == [{"enabled": True, "base_backup_every_days": 3, "window_days": 14}]
    assert result.stdout.splitlines() == [
        "-----> Continuous backups of shop changed",
        "       A base backup every 3 days, history kept 14 days",
    ]


def test_enabling_again_with_the_same_settings_says_unchanged(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (200, pitr())
    api.routes[f"PUT {PITR}"] = (200, pitr())
    result = run("pitr-enable", "-d", "shop")
    assert result.stdout.splitlines()[0] == "-----> Continuous backups of shop unchanged"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("server_unreachable", "The replication server cannot be reached: connection refused. "
         "Check the host and port, and that the server listens there."),
        ("replication_not_permitted", "The role replicator may not replicate: run ALTER ROLE "
         "replicator REPLICATION as a superuser."),
    ],
)  # fmt: skip
def test_a_refused_server_shows_the_apis_words_and_nothing_else(
    api: FakeApi, code: str, message: str
) -> None:
    api.routes[f"GET {PITR}"] = (200, disabled())
    api.routes[f"PUT {PITR}"] = error(422, code, message)
    result = run("pitr-enable", "-d", "shop", "--replication-url", "-", input=REPLICATION_URL)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == f" !     {message}"
    assert result.stdout == ""
    assert "Repl-secret-9" not in result.output


def test_days_out_of_bounds_are_refused_before_asking(api: FakeApi) -> None:
    result = run("pitr-enable", "-d", "shop", "--window-days", "31")
    assert result.exit_code == 2 and "--window-days" in result.stderr
    assert api.calls == []


# -- pitr-disable -------------------------------------------------------------------------------


def test_disable_asks_first_and_off_a_terminal_changes_nothing(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (200, pitr())
    result = run("pitr-disable", "-d", "shop")
    assert result.exit_code == 1
    assert "expires with the window (7 days)" in result.output
    assert "Cancelled: nothing was changed" in result.stderr
    assert put_bodies(api) == []


def test_disable_keeps_the_window_and_says_until_when_history_is_kept(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (200, pitr(window_days=14))
    api.routes[f"PUT {PITR}"] = (
        200,
        pitr(enabled=False, status="disabled", window_days=14,
             history_kept_until="2026-12-20T02:40:13Z"),
    )  # fmt: skip
    result = run("pitr-disable", "-d", "shop", "--yes")
    assert result.exit_code == 0, result.stderr
    assert put_bodies(api) == [{"enabled": False, "base_backup_every_days": 1, "window_days": 14}]
    assert result.stdout.splitlines() == [
        "-----> Continuous backups disabled for shop",
        "       History kept until 2026-12-20 02:40:13 UTC: `pgbackups pitr-restore` restores "
        "from it until then.",
    ]


def test_disable_when_already_disabled_changes_nothing(api: FakeApi) -> None:
    api.routes[f"GET {PITR}"] = (200, disabled())
    result = run("pitr-disable", "-d", "shop", "--yes")
    assert result.exit_code == 0
    assert result.stdout == "-----> Continuous backups are already disabled for shop.\n"
    assert put_bodies(api) == []


# -- pitr-restore, refused before anything is downloaded -----------------------------------------


def test_a_time_in_a_gap_names_the_nearest_times_and_where_to_see_the_ranges(
    api: FakeApi, tmp_path: Any
) -> None:
    message = (
        "2026-12-05T22:00:00Z is outside every recoverable range: the nearest recoverable "
        "times are 2026-12-05T21:53:10Z before and 2026-12-05T22:25:00Z after"
    )
    refusal = error(422, "outside_recovery_window", message)
    refusal[1]["error"] |= {"before": "2026-12-05T21:53:10Z", "after": "2026-12-05T22:25:00Z"}
    api.routes[f"GET {PITR}/restore"] = refusal
    target = tmp_path / "restored"
    result = run(
        "pitr-restore", "2026-12-05T22:00:00Z", "--target-dir", str(target), "--yes", "-d", "shop"
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        f" !     {message}",
        " !     `pgbackups pitr-window -d shop` shows every recoverable range.",
    ]
    assert not target.exists()
