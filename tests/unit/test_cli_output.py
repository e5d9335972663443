"""Human sizes, times and the tables the CLI prints."""

from __future__ import annotations

import pytest
from rich.console import Console

from pgbackups_cli.output import (
    BANG,
    backups_table,
    databases_table,
    human_duration,
    human_size,
    human_time,
    schedule_text,
)

pytestmark = pytest.mark.unit


def render(table: object) -> list[str]:
    console = Console(width=200, color_system=None, highlight=False)
    with console.capture() as captured:
        console.print(table)
    return [line.rstrip() for line in captured.get().splitlines()]


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "-"),
        (0, "0 bytes"),
        (1, "1 byte"),
        (999, "999 bytes"),
        (1000, "1.0 kB"),
        (12_345, "12.3 kB"),
        (999_949, "999.9 kB"),
        (999_999, "1.0 MB"),  # not "1000.0 kB"
        (12_345_678, "12.3 MB"),
        (4_200_000_000, "4.2 GB"),
        (1_500_000_000_000, "1.5 TB"),
    ],
)
def test_human_sizes(size: int | None, shown: str) -> None:
    assert human_size(size) == shown


def test_human_times_are_utc() -> None:
    assert human_time("2026-11-25T03:40:12Z") == "2026-11-25 03:40:12 UTC"
    assert human_time("2026-11-25T04:40:12.123+01:00") == "2026-11-25 03:40:12 UTC"
    assert human_time(None) == "-"


def test_human_durations() -> None:
    assert human_duration("2026-11-25T03:40:12Z", "2026-11-25T03:40:15.4Z") == "3s"
    assert human_duration("2026-11-25T03:40:12Z", "2026-11-25T03:42:13Z") == "2m01s"
    assert human_duration("2026-11-25T03:40:12Z", "2026-11-25T05:00:12Z") == "1h20m00s"
    assert human_duration("2026-11-25T03:40:12Z", None) == "-"


def test_schedule_text() -> None:
    assert schedule_text({"enabled": True, "hour": 4, "timezone": "UTC"}) == "daily at 4:00 UTC"
    assert schedule_text({"enabled": False, "hour": 4, "timezone": "UTC"}) == "disabled"


def test_backups_table_keeps_the_api_order_with_human_sizes() -> None:
    lines = render(
        backups_table(
            [
                {
                    "id": "01KB3ZQ4Y6M7T2N8S0F1E9V5AC",
                    "created_at": "2026-11-25T03:40:12Z",
                    "size": 12_345_678,
                    "method": "manual",
                    "status": "done",
                },
                {
                    "id": "01KB3ZQ4Y6M7T2N8S0F1E9V5AB",
                    "created_at": "2026-11-24T03:40:12Z",
                    "size": None,
                    "method": "periodic",
                    "status": "error",
                },
            ]
        )
    )
    assert lines[0].startswith("ID ")
    assert [cell.strip() for cell in lines[0].split(" │ ")] == [
        "ID",
        "CREATED AT",
        "METHOD",
        "SIZE",
        "STATUS",
    ]
    assert set(lines[1]) <= {"─", "┼"}
    assert [cell.strip() for cell in lines[2].split("│")] == [
        "01KB3ZQ4Y6M7T2N8S0F1E9V5AC",
        "2026-11-25 03:40:12 UTC",
        "manual",
        "12.3 MB",
        "done",
    ]
    assert [cell.strip() for cell in lines[3].split("│")] == [
        "01KB3ZQ4Y6M7T2N8S0F1E9V5AB",
        "2026-11-24 03:40:12 UTC",
        "periodic",
        "-",
        "error",
    ]


def test_databases_table() -> None:
    lines = render(
        databases_table(
            [
                {
                    "name": "shop",
                    "schedule": {"enabled": True, "hour": 1, "timezone": "Europe/Paris"},
                    "has_replica": True,
                    "last_backup": {
                        "id": "01KB3ZQ4Y6M7T2N8S0F1E9V5AC",
                        "status": "done",
                        "created_at": "2026-11-25T03:40:12Z",
                        "size": 10,
                    },
                },
                {
                    "name": "crm",
                    "schedule": {"enabled": False, "hour": 1, "timezone": "UTC"},
                    "has_replica": False,
                    "last_backup": None,
                },
            ]
        )
    )
    assert [cell.strip() for cell in lines[0].split("│")] == [
        "NAME",
        "SCHEDULE",
        "LAST BACKUP",
        "REPLICA",
    ]
    assert [cell.strip() for cell in lines[2].split("│")] == [
        "shop",
        "daily at 1:00 Europe/Paris",
        "2026-11-25 03:40:12 UTC done",
        "yes",
    ]
    assert [cell.strip() for cell in lines[3].split("│")] == ["crm", "disabled", "none", "no"]


def test_the_error_prefix_is_the_seeds() -> None:
    assert BANG == " !     "
