"""What the HTTP API reads and writes (README, "HTTP API"), beyond the domain's own records.

Request bodies, the database and schedule views, pages and errors. Backups are
returned as `pgbackups.domain.models.BackupRecord` itself. The OpenAPI document is
generated from these models, so a constraint written here is both checked on
every request and published.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from pgbackups.domain.models import (
    BACKUP_ID,
    COMPRESSION,
    DEFAULT_TIMEZONE,
    Alerting,
    BackupRecord,
    BackupStatus,
    Compression,
    DatabaseName,
    Health,
    KeptAs,
    RetentionPolicy,
    RunnerName,
    RunnerSetting,
    Schedule,
    Timezone,
)
from pgbackups.domain.pitr import DEFAULT_BASE_BACKUP_EVERY_DAYS, DEFAULT_WINDOW_DAYS, PitrStatus

RUNNER_HELP = (
    "Where its backups run: `lambda`, `fargate` (ECS, for backups longer than Lambda's "
    "15 minutes) or `auto` (the default: Fargate once backups outgrow Lambda)"
)
# Path parameters: anything else is answered 404 before any lookup.
BACKUP_REF = rf"^(latest|{BACKUP_ID.pattern[1:-1]})$"

# Write-only: kept in Secrets Manager, never returned, logged or stored elsewhere.
ConnectionUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        json_schema_extra={"writeOnly": True},
        examples=["postgres://backup:secret@db.example.com:5432/shop"],
    ),
]
# Published as a pattern, checked by models.check_compression (whose message is clearer).
CompressionSpec = Annotated[Compression, Field(json_schema_extra={"pattern": COMPRESSION.pattern})]


def optional_like(model: type[BaseModel], name: str) -> Any:
    """`model`'s field `name`, constraints included, made optional (None: unchanged).

    So a bound is written once, in `pgbackups.domain.models`, and holds for PATCH and PUT too.
    """
    return FieldInfo.merge_field_infos(model.model_fields[name], default=None)


# -- requests -----------------------------------------------------------------
# Strict: a JSON integer or boolean where the model says so, never `true`, "7",
# 8.0 or "off" read as one.
STRICT = ConfigDict(extra="forbid", strict=True)


class ScheduleSettings(Schedule):
    """A schedule in a request: the domain's Schedule, from JSON integers and booleans only."""

    model_config = STRICT

    timezone: Timezone = Field(default=DEFAULT_TIMEZONE, description="IANA time zone name")


class RetentionSettings(RetentionPolicy):
    """A retention policy in a request: the domain's, from JSON integers only."""

    model_config = STRICT


class AlertingSettings(Alerting):
    """When a database's health turns, in a request: JSON integers only."""

    model_config = STRICT


ALERTING_HELP = (
    "When its health turns: `stale_after_hours` without a successful backup (default 30: "
    "a day and the dispatcher's 6-hour catch-up), continuous backups `lag_limit_minutes` "
    "behind (default 15)"
)


class DatabaseRegistration(BaseModel):
    """POST /v1/databases: the URLs are checked with a real connection first."""

    model_config = STRICT

    name: DatabaseName
    url: ConnectionUrl
    replica_url: ConnectionUrl | None = Field(
        default=None, description="A read replica to back up from when it is reachable"
    )
    schedule: ScheduleSettings | None = Field(
        default=None, description="Default: daily at 01:00 Paris"
    )
    retention: RetentionSettings | None = None
    compression: CompressionSpec | None = Field(
        default=None, description="pg_dump compression; default chosen by benchmark"
    )
    runner: RunnerSetting | None = Field(default=None, description=RUNNER_HELP)
    alerting: AlertingSettings | None = Field(default=None, description=ALERTING_HELP)


class ScheduleChanges(BaseModel):
    """A schedule's fields to change; those left out (or null) keep their value."""

    model_config = STRICT

    enabled: bool | None = None
    hour: int | None = optional_like(Schedule, "hour")
    timezone: Timezone | None = Field(default=None, description="IANA time zone name")


class RetentionChanges(BaseModel):
    """A retention policy's counts to change; those left out (or null) keep their value."""

    model_config = STRICT

    daily: int | None = optional_like(RetentionPolicy, "daily")
    weekly: int | None = optional_like(RetentionPolicy, "weekly")
    monthly: int | None = optional_like(RetentionPolicy, "monthly")
    manual: int | None = optional_like(RetentionPolicy, "manual")


class AlertingChanges(BaseModel):
    """Alerting thresholds to change; those left out (or null) keep their value."""

    model_config = STRICT

    stale_after_hours: int | None = optional_like(Alerting, "stale_after_hours")
    lag_limit_minutes: int | None = optional_like(Alerting, "lag_limit_minutes")


class DatabaseChanges(BaseModel):
    """PATCH /v1/databases/{db}: fields left out (or null) are unchanged, except
    `replica_url`, where null removes the replica. New URLs are checked first."""

    model_config = STRICT

    url: ConnectionUrl | None = None
    replica_url: ConnectionUrl | None = None
    schedule: ScheduleChanges | None = None
    retention: RetentionChanges | None = None
    compression: CompressionSpec | None = None
    runner: RunnerSetting | None = Field(default=None, description=RUNNER_HELP)
    alerting: AlertingChanges | None = None

    @property
    def removes_replica(self) -> bool:
        return "replica_url" in self.model_fields_set and self.replica_url is None


# -- responses ----------------------------------------------------------------


class ScheduleView(Schedule):
    next_run_at: datetime | None = Field(
        description="Next periodic backup (UTC); null if disabled or when it cannot run"
    )
    error: str | None = Field(
        default=None,
        description=(
            "Why periodic backups cannot run (a time zone this runtime no longer knows: "
            "PUT the schedule with an IANA name); null when they can"
        ),
    )


class BackupSummary(BaseModel):
    id: str
    status: BackupStatus
    created_at: datetime
    size: int | None


class Database(BaseModel):
    name: str
    schedule: ScheduleView
    retention: RetentionPolicy
    compression: str
    runner: RunnerSetting = Field(description=RUNNER_HELP)
    has_replica: bool
    created_at: datetime
    last_backup: BackupSummary | None = Field(description="The newest backup, whatever its status")
    alerting: Alerting = Field(description=ALERTING_HELP)
    health: Health = Field(
        description=(
            "Whether its backups can be counted on (`ok`, `warning`, `failing`) and why, as "
            "the dispatcher (every hour) and each finished backup last judged; `ok` with no "
            "reasons until first judged"
        )
    )


class DatabaseList(BaseModel):
    databases: list[Database]


class BackupView(BackupRecord):
    """A backup as the API shows it."""

    kept_as: KeptAs | None = Field(
        default=None, description="Why retention keeps it; null when it does not"
    )


class BackupPage(BaseModel):
    backups: list[BackupView] = Field(description="Newest first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class ArchiveLink(BaseModel):
    download_url: str = Field(description="Presigned S3 GET, saved as `filename`")
    expires_at: datetime
    filename: str
    size: int | None
    sha256: str | None


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. backup_id, field

    code: str = Field(examples=["database_not_found"])
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class GatewayMessage(BaseModel):
    """What API Gateway itself answers (401 without a token, 403 with a wrong one)."""

    message: str


# -- continuous backups ---------------------------------------------------------


class PitrChanges(BaseModel):
    """PUT /v1/databases/{db}/pitr. The replication URL defaults to the database's URL."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool
    replication_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        json_schema_extra={"writeOnly": True},
        examples=["postgres://replicator:secret@db.example.com:5432/shop"],
    )
    base_backup_every_days: int = Field(default=DEFAULT_BASE_BACKUP_EVERY_DAYS, ge=1, le=7)
    window_days: int = Field(default=DEFAULT_WINDOW_DAYS, ge=1, le=30)


class BaseBackupView(BaseModel):
    id: str
    started_at: datetime
    finished_at: datetime
    start_lsn: str
    end_lsn: str
    timeline: int
    size: int
    sha256: str
    runner: RunnerName | None = Field(
        default=None, description="What took it: the backup function or the Fargate task"
    )


class BaseBackupRunView(BaseModel):
    id: str
    status: Literal["scheduled", "running"]
    requested_at: datetime
    started_at: datetime | None
    runner: RunnerName | None
    deadline_at: datetime | None = Field(description="When its runner stops it for sure")


class RecoverableRangeView(BaseModel):
    """Any second from `from` to `to` can be restored, starting from `base_backup_id`."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: datetime = Field(alias="from")
    to: datetime
    base_backup_id: str = Field(description="The base backup that starts the range")


class PitrBreakView(BaseModel):
    at: datetime = Field(description="When the chain broke")
    reason: str
    chain_id: str = Field(description="The chain that ended")
    recovered_at: datetime | None = Field(
        description="When restoring was possible again (null while the break lasts)"
    )
    gap_seconds: float | None = Field(description="How long nothing could be restored")


class PitrView(BaseModel):
    enabled: bool
    status: PitrStatus
    broken_reason: str | None
    broken_since: datetime | None = Field(
        description="When the current break began (while `status` is `broken`)"
    )
    base_backup_every_days: int
    window_days: int
    recoverable_ranges: list[RecoverableRangeView] = Field(
        description="Every stretch of time that can be restored, oldest first: the gaps "
        "between them cannot"
    )
    earliest_recoverable_at: datetime | None = Field(description="The first range's `from`")
    latest_recoverable_at: datetime | None = Field(description="The last range's `to`")
    breaks: list[PitrBreakView] = Field(description="Every break of the kept history, oldest first")
    lag_seconds: float | None = Field(description="Age of the newest WAL in S3")
    last_archived_at: datetime | None
    last_archived_wal: str | None = Field(
        pattern=r"^[0-9A-F]{24}$", description="The newest WAL file name stored"
    )
    history_kept_until: datetime | None = Field(
        description="Continuous backups off with stored history left: when its last range "
        "expires (until then it can still be restored)"
    )
    base_backups: list[BaseBackupView]
    base_backup_in_progress: BaseBackupRunView | None = Field(
        description="The base backup on its way (asked of the backups' runner), if any"
    )
    last_base_backup_error: str | None = Field(
        description="Why the last base backup failed, until one succeeds"
    )


class BaseBackupLink(BaseModel):
    id: str
    url: str
    size: int
    sha256: str
    finished_at: datetime


class WalLink(BaseModel):
    """A WAL file as the capture recorded it when it stored it: check each download
    against `sha256` and `size` (the object's own metadata proves nothing)."""

    name: str = Field(pattern=r"^[0-9A-F]{24}$", description="The file name recovery asks for")
    partial: bool = Field(description="The newest segment, not complete yet (zero-padded)")
    url: str
    sha256: str = Field(description="Hex SHA-256 of the object's bytes as stored (gzip)")
    size: int = Field(description="Bytes of the object as stored")


class RestorePlanView(BaseModel):
    target_time: datetime | None = Field(description="null: replay all the WAL (the latest state)")
    server_major: int
    system_id: str
    timeline: int
    source_database: str
    source_user: str
    base_backup: BaseBackupLink
    wal: list[WalLink] = Field(description="This page of the WAL files, in replay order")
    wal_total: int = Field(description="WAL files of the whole restore, every page")
    next_cursor: str | None = Field(description="Ask again with it for the next page")
    end_lsn: str = Field(
        description=(
            "Where this chain's stored WAL ends (`X/XXXXXXXX`) when the plan was made: "
            "a restore to `latest` replays at least this far"
        ),
        examples=["0/3000148"],
    )
    expires_at: datetime


# pg_restore's -t / -n names: as PostgreSQL writes an identifier (at most 63 bytes).
RestoreName = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[^\x00-\x1f]+$")]


class RestoreRequest(BaseModel):
    """POST /v1/databases/{db}/restores: the target is checked with a real connection
    first; its URL is kept only in a secret of the restore's own while it runs."""

    model_config = STRICT

    backup_id: str | None = Field(
        default=None,
        pattern=BACKUP_REF,
        description="The backup to restore: its id, or `latest` (the newest done one)",
    )
    target_time: str | None = Field(
        default=None,
        max_length=64,
        description="A point in time (not run by the stack yet: answered 422 not_supported)",
    )
    target_url: ConnectionUrl = Field(description="The database to restore into")
    tables: list[RestoreName] = Field(
        default_factory=list, max_length=100, description="Only these tables (pg_restore -t)"
    )
    schemas: list[RestoreName] = Field(
        default_factory=list, max_length=100, description="Only these schemas (pg_restore -n)"
    )
    clean: bool = Field(
        default=True,
        description="Drop the target's objects before creating them (--clean --if-exists)",
    )
    confirm: str | None = Field(
        default=None,
        max_length=63,
        description="The database's name: required when the target is the database itself",
    )


class RestoreProgressView(BaseModel):
    restored: int = Field(description="pg_restore's entries done")
    total: int | None = Field(description="Entries it works through; null if unknown")


class RestoreView(BaseModel):
    """A restore as the API shows it: never its target's URL."""

    id: str
    kind: Literal["backup", "point_in_time"]
    backup_id: str | None
    target_time: datetime | None
    target: str = Field(description="`host:port/dbname` of the target")
    tables: list[str]
    schemas: list[str]
    status: BackupStatus
    runner: RunnerName | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    progress: RestoreProgressView
    warnings: list[str] = Field(description="What the restore reports besides success")
    error: str | None


class RestorePage(BaseModel):
    restores: list[RestoreView] = Field(description="Newest first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )
