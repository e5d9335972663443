"""When periodic backups are due: daily at an hour of the database's own time zone.

The hour is kept in local time, so a DST change does not move it. On the day
the clocks skip that hour (spring forward) the backup runs in the first hour
after the gap; on the day an hour repeats (fall back) it runs once, because at
most one periodic backup is created per local day (`periodic_day`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pgbackups.domain.models import Schedule


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
