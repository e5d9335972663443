"""When periodic backups are due: daily at an hour of the database's own time zone.

The hour is kept in local time, so a DST change does not move it. On the day
the clocks skip that hour (spring forward) the backup runs in the first hour
after the gap; on the day an hour repeats (fall back) it runs once, because at
most one periodic backup is created per local day (`periodic_day`).

A missed hour (a manual backup holding the lock, a failed dispatcher run, a
backup that could not start) does not lose the day: `periodic_slot` stays open
for CATCH_UP_LIMIT after the due hour, within the same local day, and the
dispatcher creates the day's backup in the first run that can.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pgbackups.domain.models import Schedule

# How late a periodic backup may still be created for its day.
CATCH_UP_LIMIT = timedelta(hours=6)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class PeriodicSlot:
    """The periodic backup a dispatcher run may create: its local day, when it was
    due, and how late this run is (whole hours)."""

    day: str
    due_at: datetime
    late_by: timedelta


def periodic_day(at: datetime, timezone: str) -> str:
    """The local date of `at` in `timezone`: the key of one day's periodic backup."""
    return at.astimezone(ZoneInfo(timezone)).date().isoformat()


def _hour_exists(day: date, hour: int, zone: ZoneInfo) -> bool:
    wall = datetime(day.year, day.month, day.day, hour, tzinfo=zone)
    return wall.astimezone(UTC).astimezone(zone).hour == hour


def schedule_due_at(schedule: Schedule, at: datetime) -> bool:
    """Whether the dispatcher's run at `at` (any time within an hour) is the due one."""
    if not schedule.enabled:
        return False
    zone = ZoneInfo(schedule.timezone)
    local = at.astimezone(zone)
    if local.hour == schedule.hour:
        return True
    # The scheduled hour was skipped today: run in the first hour after the gap.
    skipped = not _hour_exists(local.date(), schedule.hour, zone)
    return skipped and local.hour == (schedule.hour + 1) % 24


def next_run_at(schedule: Schedule, after: datetime) -> datetime | None:
    """The start of the next UTC hour at which the schedule is due, or None if disabled."""
    if not schedule.enabled:
        return None
    hour = after.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    for _ in range(49):
        hour += timedelta(hours=1)
        if schedule_due_at(schedule, hour):
            return hour
    raise AssertionError("a daily schedule is due within two days")  # pragma: no cover


def due_instant(schedule: Schedule, day: date) -> datetime:
    """When the periodic backup of local `day` is due, in UTC: the scheduled hour, or on
    the day that hour is skipped the first hour after the gap (a wall time in a gap
    read with fold=0 lands just after it); of an hour that repeats, the first."""
    zone = ZoneInfo(schedule.timezone)
    wall = datetime(day.year, day.month, day.day, schedule.hour, tzinfo=zone)
    return wall.astimezone(UTC)


def periodic_slot(schedule: Schedule, at: datetime) -> PeriodicSlot | None:
    """The slot the dispatcher's run at `at` may fill: from the due hour (lateness 0) to
    CATCH_UP_LIMIT later, within the same local day; None outside it or when disabled."""
    if not schedule.enabled:
        return None
    local_day = at.astimezone(ZoneInfo(schedule.timezone)).date()
    due = due_instant(schedule, local_day)
    if at < due:
        return None
    late_by = HOUR * ((at - due) // HOUR)
    if late_by > CATCH_UP_LIMIT:
        return None
    return PeriodicSlot(day=local_day.isoformat(), due_at=due, late_by=late_by)
