"""Restore drills (verifications): their records, a database's drill settings, and when
the next drill is due.

A drill restores a backup into a throwaway server and checks it (`pgbackups.postgres.drill`);
its record keeps each check's result, the table and row counts, the restore's duration
(the measured RTO) and where the JSON report lies in S3, beside the backup. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field
from ulid import ULID

from pgbackups.domain.models import Run, Schedule
from pgbackups.domain.schedule import day_run, schedule_zone
from pgbackups.domain.smoke import MAX_SMOKE_QUERIES, SmokeQuery

VerificationKind = Literal["backup", "point_in_time"]
VerificationStatus = Literal["scheduled", "running", "passed", "failed"]
VerificationResult = Literal["passed", "failed"]

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)

DEFAULT_EVERY_DAYS = 7
# A drill's phases, in their order, laid end to end (their sum is the drill's "total"):
# a backup's goes through them all; a point in time's restore is its recovery (the base
# backup and WAL fetched and replayed, the server started), with no contents or start.
DRILL_PHASES = ("contents", "start", "restore", "checks", "stop")
# A drill is overdue (a health reason) when none passed for `every_days` and this long.
OVERDUE_SLACK = DAY
# A drill started later than the last one (in its hour, or the point-in-time drill that
# follows a backup's) does not push the next one to the day after.
DUE_SLACK = 12 * HOUR


class VerificationSettings(BaseModel):
    """A database's drills: every `every_days` days at `hour` o'clock in its schedule's
    time zone (None: twelve hours away from its backups), with its smoke queries."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    every_days: int = Field(default=DEFAULT_EVERY_DAYS, ge=1, le=365)
    hour: int | None = Field(
        default=None,
        ge=0,
        le=23,
        description="Hour of the drill in the schedule's time zone; null: 12 h from the backups'",
    )
    smoke_queries: list[SmokeQuery] = Field(default_factory=list, max_length=MAX_SMOKE_QUERIES)
    # Since when drills are enabled (set by the change that enabled them; not shown):
    # the overdue rule counts from here when no drill passed since.
    enabled_since: datetime | None = None


class VerificationState(BaseModel):
    """What a database's list shows of its drills without a second read: the last one,
    and when one last passed (bookkeeping kept on the database's record)."""

    last_id: str | None = None
    last_kind: VerificationKind | None = None
    last_status: VerificationStatus | None = None
    last_at: datetime | None = None
    last_passed_at: datetime | None = None
    restore_seconds: float | None = None


class CheckResult(BaseModel):
    """One check of a drill: `restore`, `objects`, `amcheck`, `row_counts`, `smoke N`."""

    name: str
    passed: bool
    detail: str
    seconds: float | None = None  # how long it took (None: a drill from before it was timed)


class VerificationRecord(Run):
    """A restore drill of a backup (or of a point in time): `scheduled` → `running` on
    the Fargate runner → `passed` | `failed`."""

    what: ClassVar[str] = "verification"

    status: VerificationStatus = "scheduled"  # type: ignore[assignment]
    kind: VerificationKind = "backup"
    # The backup drilled; for a point in time, the base backup its recovery started from.
    backup_id: str | None = None
    target_time: datetime | None = None  # a point in time's; null: the latest
    restore_seconds: float | None = None
    # Seconds per phase of the drill (`DRILL_PHASES`, those it went through), and "total".
    phases: dict[str, float] = Field(default_factory=dict)
    server_version: str | None = None  # of the throwaway server
    source_version: str | None = None  # of the backed-up server, as the backup recorded it
    checks: list[CheckResult] = Field(default_factory=list)
    tables: int | None = None
    rows: int | None = None
    report_key: str | None = None
    report_sha256: str | None = None

    @classmethod
    def new(
        cls,
        database: str,
        created_at: datetime,
        *,
        backup_id: str,
        source_version: str | None,
        kind: VerificationKind = "backup",
        target_time: datetime | None = None,
    ) -> VerificationRecord:
        return cls(
            id=str(ULID.from_datetime(created_at)),
            database=database,
            kind=kind,
            backup_id=backup_id,
            target_time=target_time,
            source_version=source_version,
            created_at=created_at,
        )

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failed_checks(self) -> list[str]:
        return [check.name for check in self.checks if not check.passed]

    def report_key_beside(self, object_key: str) -> str:
        """`<folder>/<source id>.verification-<id>.json`, beside the drilled object (the
        backup's archive, a point in time's base backup)."""
        folder = object_key.rsplit("/", 1)[0]
        return f"{folder}/{self.backup_id}.verification-{self.id}.json"

    def failed(self, reason: str, at: datetime) -> Self:
        return self.model_copy(update={"status": "failed", "finished_at": at, "error": reason})


def drill_hour(settings: VerificationSettings, schedule: Schedule) -> int:
    """The hour drills start at: the one set, or twelve hours from the backups'; never
    the backups' own hour while they are scheduled (the next one then)."""
    hour = settings.hour if settings.hour is not None else (schedule.hour + 12) % 24
    if schedule.enabled and hour == schedule.hour:
        hour = (hour + 1) % 24
    return hour


def next_verification_at(
    settings: VerificationSettings, schedule: Schedule, last_at: datetime | None, now: datetime
) -> datetime | None:
    """The dispatcher run (a UTC hour's start) due to start the next drill, at or after
    the hour of `now`: on the drill's hour, `every_days` after the last one started
    (`last_at`), or at the first drill hour when there was none. None when disabled.
    UnknownTimezone when the schedule's zone is not known here."""
    if not settings.enabled:
        return None
    zone = schedule_zone(schedule)
    hour = drill_hour(settings, schedule)
    earliest = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if last_at is not None:
        earliest = max(earliest, last_at + DAY * settings.every_days - DUE_SLACK)
    first_day = earliest.astimezone(zone).date()
    runs = (day_run(zone, hour, first_day + DAY * n) for n in range(0, 3))
    return min(run for run in runs if run is not None and run >= earliest)


def verification_due(
    settings: VerificationSettings, schedule: Schedule, last_at: datetime | None, at: datetime
) -> bool:
    """Whether the dispatcher's run at `at` (any time within an hour) starts a drill."""
    hour_start = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return next_verification_at(settings, schedule, last_at, at) == hour_start


def point_in_time_due(state: VerificationState | None, at: datetime) -> bool:
    """Whether the dispatcher's run at `at` follows a scheduled backup drill with one of a
    point in time (for a database with continuous backups): the last drill was a
    backup's, it finished, and it started less than a day ago."""
    if state is None or state.last_kind != "backup" or state.last_at is None:
        return False
    return state.last_status in ("passed", "failed") and at - state.last_at < DAY


def random_second(
    start: datetime, end: datetime, draw: Callable[[float, float], float]
) -> datetime:
    """A whole second inside [start, end] (`draw(a, b)`: a number in [a, b], as
    random.uniform gives); `start` itself when no whole second lies inside."""
    first = start.replace(microsecond=0)
    if first < start:
        first += timedelta(seconds=1)
    last = end.replace(microsecond=0)
    if last < first:
        return start
    return first + timedelta(seconds=round(draw(0.0, (last - first).total_seconds())))


def overdue_since(
    settings: VerificationSettings, state: VerificationState | None, created_at: datetime
) -> datetime | None:
    """When drills become overdue: `every_days` and a day after the last passed drill (or
    after drills were enabled, or the database registered, when none passed since).
    None when disabled."""
    if not settings.enabled:
        return None
    state = state or VerificationState()
    start = max(
        moment
        for moment in (state.last_passed_at, settings.enabled_since, created_at)
        if moment is not None
    )
    return start + DAY * settings.every_days + OVERDUE_SLACK
