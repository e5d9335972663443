"""`backups-config`: the schedule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.cli_commands.fakes import FakeApi, run

pytestmark = pytest.mark.unit


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
