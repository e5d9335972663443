"""The domain's records: databases, their schedule and retention policy, backups.

These models are what DynamoDB stores (see `pgbackups.adapters.catalog`) and what the
HTTP API returns; the API's request bodies live in `pgbackups.api.schemas`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from ulid import ULID

from pgbackups.domain.names import BACKUP_ID as BACKUP_ID  # re-exported: the API and catalog use it
from pgbackups.domain.names import DATABASE_NAME
from pgbackups.domain.timezones import check_timezone

BackupMethod = Literal["periodic", "manual"]
BackupSource = Literal["primary", "replica"]
RunnerName = Literal["lambda", "fargate"]
RunnerSetting = Literal["lambda", "fargate", "auto"]
KeptAs = Literal["daily", "weekly", "monthly", "manual"]

DEFAULT_HOUR = 1
DEFAULT_TIMEZONE = "Europe/Paris"
# Chosen from `make bench` (bench/README.md, "Compression and throughput").
DEFAULT_COMPRESSION = "zstd:1"
COMPRESSION = re.compile(
    r"^(none|gzip(:[1-9])?|lz4(:([1-9]|1[0-2]))?|zstd(:([1-9]|1[0-9]|2[0-2]))?)$"
)


# A claim on deleting a removed database's URLs older than this was left by a run that
# stopped halfway: the name may be registered again (the hourly sweep finishes it).
SECRET_DELETION_LEASE = timedelta(minutes=15)

# Enough for pg_dump's last lines; a whole server log would not fit a DynamoDB item.
ERROR_TEXT_LIMIT = 4096


def error_text(reason: str) -> str:
    """A backup's `error`, capped: the end is kept, where pg_dump says what went wrong."""
    if len(reason) <= ERROR_TEXT_LIMIT:
        return reason
    return "…" + reason[-(ERROR_TEXT_LIMIT - 1) :]


def check_compression(spec: str) -> str:
    if not COMPRESSION.match(spec):
        raise ValueError(
            f"unknown compression {spec!r}: use none, gzip[:1-9], lz4[:1-12] or zstd[:1-22]"
        )
    return spec


Timezone = Annotated[str, AfterValidator(check_timezone), Field(examples=["Europe/Paris"])]
Compression = Annotated[str, AfterValidator(check_compression), Field(examples=["zstd:3"])]
DatabaseName = Annotated[str, Field(pattern=DATABASE_NAME.pattern, examples=["shop"])]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Schedule(BaseModel):
    """When periodic backups run: daily at `hour` o'clock in `timezone`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    hour: int = Field(default=DEFAULT_HOUR, ge=0, le=23)
    # As stored: requests check it (`Timezone`, `pgbackups.api.schemas.ScheduleSettings`),
    # but a zone the runtime no longer knows must not make the record unreadable; the
    # schedule's functions refuse it for this database alone (domain.schedule.schedule_zone).
    timezone: str = Field(default=DEFAULT_TIMEZONE, examples=["Europe/Paris"])


class RetentionPolicy(BaseModel):
    """How many backups to keep (the Starter plan's defaults)."""

    model_config = ConfigDict(extra="forbid")

    daily: int = Field(default=7, ge=1, le=35)
    weekly: int = Field(default=4, ge=0, le=52)
    monthly: int = Field(default=0, ge=0, le=120)
    manual: int = Field(default=10, ge=1, le=500)


HealthStatus = Literal["ok", "warning", "failing"]
Severity = Literal["warning", "failing"]
ReasonCode = Literal[
    "backup_failed",
    "backups_stale",
    "pitr_broken",
    "pitr_lagging",
    "restore_failed",
    "verification_failed",
    "verification_overdue",
]


class HealthReason(BaseModel):
    """One incident: a stable `code`, and when it began (`pgbackups.domain.health`)."""

    code: ReasonCode
    severity: Severity
    message: str = Field(description="What is wrong and what to do, for a person")
    since: datetime


class Health(BaseModel):
    """A database's health as the API shows it (`since`: when it last changed status)."""

    status: HealthStatus = "ok"
    reasons: list[HealthReason] = Field(default_factory=list)
    since: datetime | None = None


# A daily schedule's backup may come as late as the dispatcher's 6-hour catch-up window
# (pgbackups.domain.schedule.CATCH_UP_LIMIT) after a day: older than that, it missed one.
DEFAULT_STALE_AFTER_HOURS = 30
DEFAULT_LAG_LIMIT_MINUTES = 15


class Alerting(BaseModel):
    """When a database's health turns: backups older than `stale_after_hours`, continuous
    backups more than `lag_limit_minutes` behind."""

    model_config = ConfigDict(extra="forbid")

    stale_after_hours: int = Field(default=DEFAULT_STALE_AFTER_HOURS, ge=1, le=24 * 31)
    lag_limit_minutes: int = Field(default=DEFAULT_LAG_LIMIT_MINUTES, ge=1, le=24 * 60)

    @property
    def stale_after(self) -> timedelta:
        return timedelta(hours=self.stale_after_hours)

    @property
    def lag_limit(self) -> timedelta:
        return timedelta(minutes=self.lag_limit_minutes)


class DatabaseRecord(BaseModel):
    """A registered database. Its connection URLs live in Secrets Manager only."""

    name: str
    schedule: Schedule = Field(default_factory=Schedule)
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)
    compression: str = DEFAULT_COMPRESSION
    has_replica: bool = False
    # Which runner takes its backups (pgbackups.domain.runners.choose_runner).
    runner: RunnerSetting = "auto"
    alerting: Alerting = Field(default_factory=Alerting)
    # Restore drills (pgbackups.domain.verifications).
    verification: VerificationSettings = Field(default_factory=lambda: VerificationSettings())
    created_at: datetime
    # Recorded by pgbackups.usecases.health (None: never evaluated, shown as ok).
    health: Health | None = None
    # Bookkeeping, not shown by the API:
    active_backup_id: str | None = None  # the one scheduled or running backup (the lock)
    last_periodic_day: str | None = None  # local date of the last periodic backup created
    last_periodic_id: str | None = None  # the backup that took last_periodic_day
    last_backup_id: str | None = None  # the newest backup created
    active_verification_id: str | None = None  # the one drill scheduled or running
    verification_state: VerificationState | None = None  # its last drill
    removed_at: datetime | None = None  # removed: no schedule, backups expire under policy
    secret_deletion: datetime | None = None  # removed: its URLs are being deleted since


RunStatus = Literal["scheduled", "running", "done", "error"]
BackupStatus = RunStatus

# Runs are given up (the reaper's rule, Run.abandoned_reason) when:
TIMED_OUT = "timed out"
# a `scheduled` run's start (async invoke, RunTask) never reached the code;
SCHEDULED_GRACE = timedelta(minutes=30)
# a `running` run is this late beyond its runner's deadline (`deadline_at`): it was
# killed (timeout, crash) before it could record anything.
RUNNING_GRACE = timedelta(minutes=5)


class Run(BaseModel):
    """The lifecycle every run on a runner shares (a backup, a continuous backup's base
    backup): `scheduled` → `running` on a runner until its deadline → `done` or `error`."""

    what: ClassVar[str] = "run"  # what a person calls it, in the reaper's reasons

    id: str
    database: str
    status: RunStatus = "scheduled"
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    runner: RunnerName | None = None  # what took it
    # When the runner that took it stops it for sure (set when it starts running):
    # the reaper gives up on a `running` run only after this.
    deadline_at: datetime | None = None
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ("scheduled", "running")

    def abandoned_reason(
        self, now: datetime, *, longest_run: timedelta | None = None
    ) -> str | None:
        """Why this scheduled or running run is given up, or None while its runner may
        still finish it: the one rule the dispatcher's reaper and the base backups' lock
        apply. `longest_run` stands in for the deadline of a run started before
        deadlines were recorded."""
        deadline_at = self.deadline_at
        if deadline_at is None and self.started_at is not None and longest_run is not None:
            deadline_at = self.started_at + longest_run
        if self.status == "running" and self.started_at is not None and deadline_at is not None:
            if now > deadline_at + RUNNING_GRACE:
                minutes = int((now - self.started_at).total_seconds() // 60)
                return (
                    f"{TIMED_OUT}: the {self.runner or self.what} run stopped without finishing "
                    f"(no result {minutes} minutes after it started)"
                )
        elif self.status == "scheduled" and now - self.created_at > SCHEDULED_GRACE:
            return f"the backup function never started this {self.what}"
        return None

    def failed(self, reason: str, at: datetime) -> Self:
        return self.model_copy(update={"status": "error", "finished_at": at, "error": reason})


class BackupRecord(Run):
    """One backup: a pg_dump custom-format archive in S3 and what is known of it."""

    what: ClassVar[str] = "backup"

    name: str
    method: BackupMethod
    size: int | None = None
    database_size: int | None = None
    sha256: str | None = None
    compression: str | None = None
    source: BackupSource | None = None
    server_version: str | None = None
    pg_dump_version: str | None = None
    # Recorded as the upload goes, for clients that wait (usecases.backup.UploadProgress).
    uploaded: int | None = Field(
        default=None,
        description=(
            "While running: bytes of the archive in S3 so far (whole parts, recorded "
            "every few seconds); else null"
        ),
    )
    # Periodic backups: when the schedule made it due, and how late the dispatcher
    # created it (0 on time; whole hours when it caught up a missed hour).
    scheduled_for: datetime | None = None
    late_by_seconds: int | None = None
    # Object Lock (pgbackups.domain.lock): S3 refuses to destroy the archive before this
    # date (extended when retention keeps it longer); a legal hold keeps it until released.
    locked_until: datetime | None = None
    legal_hold: bool = False
    # Its last restore drill (pgbackups.domain.verifications): when, and the result.
    verified_at: datetime | None = None
    verification: Literal["passed", "failed"] | None = None

    @classmethod
    def new(cls, database: str, method: BackupMethod, created_at: datetime) -> BackupRecord:
        """A `scheduled` backup, its ULID taken from its creation time."""
        return cls(
            id=str(ULID.from_datetime(created_at)),
            database=database,
            name=backup_name(database, created_at),
            method=method,
            created_at=created_at,
        )

    @property
    def object_key(self) -> str:
        return archive_key(self.database, self.id)

    @property
    def filename(self) -> str:
        return f"{self.name}.pgsql"


def backup_created_at(backup_id: str) -> datetime:
    """When a backup was created, from its ULID (BackupRecord.new)."""
    return ULID.from_str(backup_id).datetime


@dataclass(frozen=True)
class DatabaseHistory:
    """A database as one read of the whole catalog saw it: its record, its visible
    backups newest first, and the ids of backups whose deletion did not finish."""

    database: DatabaseRecord
    backups: list[BackupRecord]
    pending_deletions: list[str]


@dataclass(frozen=True)
class ConnectionInfo:
    """A database's connection URLs, as kept in Secrets Manager."""

    url: str
    replica_url: str | None = None
    version: int = 0  # which write of the URLs this is (0: not counted, or not stored yet)

    def __repr__(self) -> str:  # never print a password by accident
        replica = "***" if self.replica_url else None
        return f"ConnectionInfo(url='***', replica_url={replica!r})"


BackupKind = Literal["logical", "base", "restore", "verify"]


class BackupRequest(BaseModel):
    """What a runner hands the backup code: the backup function's event, one model for
    the sender (`BackupRunner.start`) and the receiver (the handler).

    `kind` says which: a logical backup (pg_dump, a BackupRecord), a continuous
    backup's base backup (pg_basebackup, a BaseBackupRun), a restore (pg_restore, a
    RestoreRecord: `backup_id` is then the restore's id) or a drill (`verify`: the
    verification's id); absent means logical, as every request was before base backups
    ran on the runners.
    """

    model_config = ConfigDict(extra="ignore")

    database: str = Field(pattern=DATABASE_NAME.pattern)
    backup_id: str = Field(pattern=BACKUP_ID.pattern)
    kind: BackupKind = "logical"
    # The PostgreSQL major whose server binaries the run starts (a point-in-time restore,
    # a drill): the Fargate runner unpacks that major's layer in the task (servers.py).
    server_major: int | None = None


def backup_name(database: str, created_at: datetime) -> str:
    """`YYYYMMDDhhmmss_<database>` from the creation time in UTC."""
    return f"{created_at.astimezone(UTC):%Y%m%d%H%M%S}_{database}"


def expected_archive_size(database_size: int | None, last_ratio: float | None) -> int | None:
    """pg_database_size times the last backup's archive/database ratio (1 if unknown)."""
    if not database_size:
        return None
    return int(database_size * (last_ratio if last_ratio and last_ratio > 0 else 1.0))


def archive_key(database: str, backup_id: str) -> str:
    return f"databases/{database}/backups/{backup_id}.pgsql"


# How long an archive's presigned download URL stays valid: by default, and at most.
DEFAULT_URL_LIFETIME = timedelta(minutes=5)
MAX_URL_LIFETIME = timedelta(hours=1)


def to_rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Drill settings hang on DatabaseRecord; their module builds on Run above.
from pgbackups.domain.verifications import (  # noqa: E402
    VerificationSettings,
    VerificationState,
)

DatabaseRecord.model_rebuild()
