"""When periodic backups are due, across both DST changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest

from pgbackups.domain.models import Schedule
from pgbackups.domain.schedule import (
    PeriodicSlot,
    next_run_at,
    periodic_day,
    periodic_slot,
    schedule_due_at,
)
from pgbackups.domain.timezones import check_timezone, iana_zones

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
    # The first 02:00 is the day's run; the repeated one only catches it up.
    assert schedule_due_at(two_am, first) and not schedule_due_at(two_am, second)
    assert periodic_slot(two_am, second) == PeriodicSlot("2026-10-25", first, timedelta(hours=1))
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


YEAR = 2026


def transition_days(zone: ZoneInfo) -> list[date]:
    """The UTC days of YEAR in which the zone's offset changes."""
    start = datetime(YEAR, 1, 1, tzinfo=UTC)
    days = [start + timedelta(days=n) for n in range(366)]
    return [
        day.date()
        for before, day in itertools.pairwise(days)
        if before.astimezone(zone).utcoffset() != day.astimezone(zone).utcoffset()
    ]


def hourly_runs(schedule: Schedule, start: datetime, hours: int) -> dict[str, datetime]:
    """The dispatcher's runs from `start` for `hours`, as the catalog takes them (one
    periodic backup per local day, refused for the day it last took): each local day's
    backup and the run that created it. A second backup of a day fails the test."""
    created: dict[str, datetime] = {}
    last_day = None
    for at in (start + timedelta(hours=h) for h in range(hours)):
        slot = periodic_slot(schedule, at)
        if slot is None or slot.day == last_day:
            continue
        assert slot.day not in created, (schedule, slot.day, at)
        created[slot.day] = at
        last_day = slot.day
    return created


def zones_with_their_transitions() -> list[tuple[str, list[date]]]:
    """Every zone of the runtime, one per behaviour over YEAR (a link and its target, or
    two zones with the same offsets hour by hour, behave alike), with its transitions."""
    found: dict[tuple[object, ...], tuple[str, list[date]]] = {}
    for name in sorted(available_timezones()):
        if name.startswith(("posix/", "right/")) or name in {"Factory", "localtime"}:
            continue
        zone = ZoneInfo(name)
        days = transition_days(zone)
        hours = [
            datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(hours=h)
            for d in days
            for h in range(-24, 48)
        ]
        daily = [datetime(YEAR, 1, 1, tzinfo=UTC) + timedelta(days=n) for n in range(366)]
        key = tuple(at.astimezone(zone).utcoffset() for at in daily + hours) + tuple(days)
        found.setdefault(key, (name, days))
    return list(found.values())


def test_every_zone_every_hour_every_transition_one_backup_a_day_at_next_run_at() -> None:
    """Around each offset change of YEAR in every zone (and a few days of each zone
    without one), for each hour 0-23: each whole local day gets exactly one periodic
    backup from the dispatcher's hourly runs, created on time, at the run `next_run_at`
    announced before it."""
    problems = []
    zones = zones_with_their_transitions()
    assert len(zones) > 50  # 65 behaviours in 2026 for about 600 names
    for name, days in zones:
        zone = ZoneInfo(name)
        for day in days or [date(YEAR, 6, 1)]:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=2)
            hours = 24 * 5
            seen = [(start + timedelta(hours=h)).astimezone(zone).date() for h in range(hours)]
            whole_days = sorted({d.isoformat() for d in seen})[1:-1]  # the edges are partial
            for hour in range(24):
                schedule = Schedule(hour=hour, timezone=name)
                created = hourly_runs(schedule, start, hours)
                missing = [d for d in whole_days if d not in created]
                if missing:
                    problems.append((name, hour, "no backup on", missing))
                for local_day in whole_days:
                    run = created.get(local_day)
                    if run is None:
                        continue
                    announced = next_run_at(schedule, run - HOUR_BEFORE)
                    if announced != run:
                        problems.append((name, hour, local_day, run, "announced", announced))
    assert problems == []


HOUR_BEFORE = timedelta(minutes=59)


@pytest.mark.parametrize(
    ("zone", "hour", "day", "run"),
    [
        # Spring forward at 23:00 local: the gap ends the day, whose last run is 22:00.
        ("America/Nuuk", 23, "2026-03-28", "2026-03-29T00:00:00+00:00"),
        ("America/Godthab", 23, "2026-03-28", "2026-03-29T00:00:00+00:00"),
        ("America/Scoresbysund", 23, "2026-03-28", "2026-03-29T00:00:00+00:00"),
        # Two hours skipped (01:00 and 02:00 UTC+0 become 03:00 UTC+2).
        ("Antarctica/Troll", 1, "2026-03-29", "2026-03-29T01:00:00+00:00"),
    ],
)
def test_a_gap_at_the_scheduled_hour_still_gets_its_day_backup(
    zone: str, hour: int, day: str, run: str
) -> None:
    schedule = Schedule(hour=hour, timezone=zone)
    at = datetime.fromisoformat(run)
    assert periodic_slot(schedule, at) == PeriodicSlot(day, at, timedelta(0))
    assert next_run_at(schedule, at - timedelta(hours=3)) == at


def test_every_known_zone_is_stored_canonical_or_refused() -> None:
    stored = {}
    for name in sorted(iana_zones()):
        try:
            stored[name] = check_timezone(name)
        except ValueError:
            continue
    assert stored["US/Pacific"] == "America/Los_Angeles"
    assert stored["Zulu"] == stored["Etc/UTC"] == "UTC"
    assert "Etc/GMT+5" not in stored
    assert all(check_timezone(canonical) == canonical for canonical in stored.values())
    assert len(set(stored.values())) > 300
