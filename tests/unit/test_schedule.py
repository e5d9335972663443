"""When periodic backups are due, across both DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgbackups.domain.models import Schedule
from pgbackups.domain.schedule import next_run_at, periodic_day, periodic_slot, schedule_due_at

pytestmark = pytest.mark.unit

PARIS_1AM = Schedule(enabled=True, hour=1, timezone="Europe/Paris")


def due_hours(schedule: Schedule, day: str) -> list[str]:
    """The UTC hours of a UTC day at which the dispatcher creates a backup."""
    start = datetime.fromisoformat(f"{day}T00:00:00+00:00")
    return [
        f"{at:%H:%M}"
        for at in (start + timedelta(hours=h) for h in range(24))
        if schedule_due_at(schedule, at)
    ]


@pytest.mark.parametrize(
    ("utc_day", "expected"),
    [
        ("2026-03-28", ["00:00"]),  # CET, the day before spring forward
        ("2026-03-29", ["00:00", "23:00"]),  # 01:00 CET that day, then 01:00 CEST of the 30th
        ("2026-03-30", ["23:00"]),  # CEST
        ("2026-10-24", ["23:00"]),  # CEST: 01:00 of the 25th
        (
            "2026-10-25",
            [],
        ),  # fall back day in UTC: 01:00 CET of the 26th is at 00:00 UTC on the 26th
        ("2026-10-26", ["00:00"]),  # CET
    ],
)
def test_one_am_paris_is_due_at_the_right_utc_hour_around_dst(
    utc_day: str, expected: list[str]
) -> None:
    assert due_hours(PARIS_1AM, utc_day) == expected


def test_every_local_day_of_a_year_gets_exactly_one_due_day() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    days = [
        periodic_day(at, "Europe/Paris")
        for at in (start + timedelta(hours=h) for h in range(24 * 365))
        if schedule_due_at(PARIS_1AM, at)
    ]
    assert len(days) == len(set(days)) == 365


def test_an_hour_skipped_by_spring_forward_runs_in_the_hour_after() -> None:
    two_am = Schedule(hour=2, timezone="Europe/Paris")
    # 2026-03-29 02:00 does not exist in Paris: 01:59 CET is followed by 03:00 CEST (01:00 UTC).
    assert due_hours(two_am, "2026-03-29") == ["01:00"]


def test_an_hour_repeated_by_fall_back_is_one_periodic_day() -> None:
    two_am = Schedule(hour=2, timezone="Europe/Paris")
    first, second = (datetime(2026, 10, 25, h, tzinfo=UTC) for h in (0, 1))
    assert schedule_due_at(two_am, first) and schedule_due_at(two_am, second)
    assert (
        periodic_day(first, "Europe/Paris") == periodic_day(second, "Europe/Paris") == "2026-10-25"
    )


def test_a_disabled_schedule_is_never_due() -> None:
    disabled = Schedule(enabled=False, hour=1)
    assert due_hours(disabled, "2026-11-25") == []
    assert next_run_at(disabled, datetime(2026, 11, 25, tzinfo=UTC)) is None


def test_next_run_at_is_the_next_due_hour() -> None:
    assert next_run_at(PARIS_1AM, datetime(2026, 11, 25, 0, 30, tzinfo=UTC)) == datetime(
        2026, 11, 26, 0, 0, tzinfo=UTC
    )
    assert next_run_at(PARIS_1AM, datetime(2026, 7, 1, 12, 0, tzinfo=UTC)) == datetime(
        2026, 7, 1, 23, 0, tzinfo=UTC
    )
    utc_4am = Schedule(hour=4, timezone="UTC")
    assert next_run_at(utc_4am, datetime(2026, 11, 25, 3, 59, tzinfo=UTC)) == datetime(
        2026, 11, 25, 4, 0, tzinfo=UTC
    )


def slots(schedule: Schedule, start: datetime, hours: int) -> list[tuple[str, str, int]]:
    """(UTC hour, local day, hours late) of each run that may create the day's backup."""
    found = []
    for at in (start + timedelta(hours=h) for h in range(hours)):
        slot = periodic_slot(schedule, at)
        if slot is not None:
            found.append((f"{at:%d %H:%M}", slot.day, int(slot.late_by.total_seconds() // 3600)))
    return found


def test_a_day_stays_open_six_hours_after_its_due_hour() -> None:
    utc_3am = Schedule(hour=3, timezone="UTC")
    assert slots(utc_3am, datetime(2026, 11, 25, tzinfo=UTC), 24) == [
        (f"25 {h:02}:00", "2026-11-25", h - 3) for h in range(3, 10)
    ]


def test_catching_up_never_crosses_local_midnight() -> None:
    utc_10pm = Schedule(hour=22, timezone="UTC")
    assert slots(utc_10pm, datetime(2026, 11, 25, 12, tzinfo=UTC), 24) == [
        ("25 22:00", "2026-11-25", 0),
        ("25 23:00", "2026-11-25", 1),
    ]


def test_catch_up_on_the_spring_forward_day_counts_real_hours() -> None:
    two_am = Schedule(hour=2, timezone="Europe/Paris")
    # 02:00 is skipped: due at 03:00 CEST (01:00 UTC), open until 07:00 UTC.
    assert slots(two_am, datetime(2026, 3, 28, 22, tzinfo=UTC), 12) == [
        (f"29 {h:02}:00", "2026-03-29", h - 1) for h in range(1, 8)
    ]


def test_catch_up_on_the_fall_back_day_counts_real_hours() -> None:
    two_am = Schedule(hour=2, timezone="Europe/Paris")
    # Due at the first 02:00 (00:00 UTC); the repeated 02:00 is an hour late.
    assert slots(two_am, datetime(2026, 10, 24, 22, tzinfo=UTC), 12) == [
        (f"25 {h:02}:00", "2026-10-25", h) for h in range(0, 7)
    ]


def test_a_half_hour_zone_is_on_time_in_the_run_after_its_due_time() -> None:
    kolkata_1am = Schedule(hour=1, timezone="Asia/Kolkata")  # 19:30 UTC the day before
    found = slots(kolkata_1am, datetime(2026, 11, 24, 12, tzinfo=UTC), 24)
    assert found[0] == ("24 20:00", "2026-11-25", 0)
    assert found[-1] == ("25 02:00", "2026-11-25", 6)  # 07:30 local; 08:30 is 7 hours late


def test_every_local_day_of_a_year_has_one_on_time_run_and_six_catch_ups() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    runs = slots(PARIS_1AM, start, 24 * 365)
    by_day: dict[str, list[int]] = {}
    for _, day, late in runs:
        by_day.setdefault(day, []).append(late)
    assert all(lates == list(range(7)) for day, lates in by_day.items() if day != "2026-01-01")
