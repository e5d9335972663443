"""When periodic backups are due: daily at an hour of the database's own time zone.

The dispatcher runs at the start of every UTC hour. ONE function, `day_run`, says
which of those runs creates a local day's backup; the dispatcher (`periodic_slot`)
and the API's `next_run_at` both ask it, so they cannot disagree.

The hour is kept in local time, so a DST change does not move it. On the day the
clocks skip that hour (spring forward) the backup runs in the first run after the
gap, or, when the gap ends the day (America/Nuuk at 23:00), in the day's last run;
on the day an hour repeats (fall back) it runs in the first of the two, and at most
one periodic backup is created per local day (`periodic_day`). In a zone whose
offset is not whole hours (Asia/Kolkata, Australia/Lord_Howe, Pacific/Chatham) it
runs in the first run after the scheduled time.

A missed run (a manual backup holding the lock, a failed dispatcher run, a backup
that could not start) does not lose the day: `periodic_slot` stays open for
CATCH_UP_LIMIT after the day's run, within the same local day, and the dispatcher
creates the day's backup in the first run that can.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pgbackups.domain.models import Schedule

# How late a periodic backup may still be created for its day.
CATCH_UP_LIMIT = timedelta(hours=6)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class UnknownTimezone(ValueError):
    """A stored schedule's time zone this runtime does not know (one the time zone
    database has since dropped, or a value written around the API's check)."""


@dataclass(frozen=True)
class PeriodicSlot:
    """The periodic backup a dispatcher run may create: its local day, the run due to
    create it, and how late this run is (whole hours)."""

    day: str
    due_at: datetime
    late_by: timedelta


def schedule_zone(schedule: Schedule) -> ZoneInfo:
    """The schedule's time zone, or UnknownTimezone saying what to do about it."""
    try:
        return ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimezone(
            f"the schedule's time zone {schedule.timezone!r} is not known to this runtime: "
            "set the schedule's timezone again (an IANA name such as Europe/Paris)"
        ) from None


def periodic_day(at: datetime, timezone: str) -> str:
    """The local date of `at` in `timezone`: the key of one day's periodic backup."""
    return at.astimezone(ZoneInfo(timezone)).date().isoformat()


def _hour_mark_from(instant: datetime) -> datetime:
    """The first start of a UTC hour at or after `instant`."""
    floor = instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return floor if floor == instant else floor + HOUR


def _local_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of local `day` (a midnight in a gap: the gap's end)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def day_run(zone: ZoneInfo, hour: int, day: date) -> datetime | None:
    """The dispatcher run (a UTC hour's start) due to create local `day`'s backup at
    `hour`: the first run at or after that wall time (in a gap, read with fold=0, it
    is the gap's end; of an hour that repeats, the first), or the day's last run when
    none of the day is left after it; None for a day without runs (none exists today)."""
    wall = datetime(day.year, day.month, day.day, hour, tzinfo=zone).astimezone(UTC)
    run = _hour_mark_from(wall)
    if run.astimezone(zone).date() == day:
        return run
    last = _hour_mark_from(_local_start(day + DAY, zone)) - HOUR
    if last.astimezone(zone).date() == day:
        return last
    return None


def periodic_slot(schedule: Schedule, at: datetime) -> PeriodicSlot | None:
    """The slot the dispatcher's run at `at` may fill: from the day's run (lateness 0)
    to CATCH_UP_LIMIT later, within the same local day; None outside it or when
    disabled. UnknownTimezone when the schedule's zone is not known here."""
    if not schedule.enabled:
        return None
    zone = schedule_zone(schedule)
    local_day = at.astimezone(zone).date()
    due = day_run(zone, schedule.hour, local_day)
    if due is None or at < due:
        return None
    late_by = HOUR * ((at - due) // HOUR)
    if late_by > CATCH_UP_LIMIT:
        return None
    return PeriodicSlot(day=local_day.isoformat(), due_at=due, late_by=late_by)


def schedule_due_at(schedule: Schedule, at: datetime) -> bool:
    """Whether the dispatcher's run at `at` (any time within an hour) is a day's run."""
    slot = periodic_slot(schedule, at)
    return slot is not None and not slot.late_by


def next_run_at(schedule: Schedule, after: datetime) -> datetime | None:
    """The next run (after `after`) due to create a periodic backup, or None if disabled.
    UnknownTimezone when the schedule's zone is not known here."""
    if not schedule.enabled:
        return None
    zone = schedule_zone(schedule)
    today = after.astimezone(zone).date()
    runs = (day_run(zone, schedule.hour, today + DAY * n) for n in range(-1, 3))
    return min(run for run in runs if run is not None and run > after)
