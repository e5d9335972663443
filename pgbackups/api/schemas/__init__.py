"""What the HTTP API reads and writes (docs/api.md), beyond the domain's own records.

Request bodies, the database and schedule views, pages and errors. Backups are
returned as `pgbackups.domain.models.BackupRecord` itself. The OpenAPI document is
generated from these models, so a constraint written here is both checked on
every request and published.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

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
    RunnerSetting,
    Schedule,
    Timezone,
)

RUNNER_HELP = (
    "Where its backups run: `lambda`, `fargate` (ECS, for backups longer than Lambda's "
    "15 minutes) or `auto` (the default: Fargate once backups outgrow Lambda)"
)
# Path parameters: anything else is answered 404 before any lookup.
BACKUP_REF: str = rf"^(latest|{BACKUP_ID.pattern[1:-1]})$"

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
STRICT: ConfigDict = ConfigDict(extra="forbid", strict=True)


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

VERIFICATION_HELP = (
    "Restore drills: every `every_days` days (default 7) at `hour` in the schedule's time "
    "zone (null: 12 hours from the backups', never at their hour), each with up to 10 "
    "read-only `smoke_queries` ({sql, expect}: expect `rows >= 1` or `value = …`)"
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
    verification: VerificationChanges | None = Field(default=None, description=VERIFICATION_HELP)

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
    verification: VerificationSettingsView = Field(description=VERIFICATION_HELP)
    verification_status: VerificationStatusView
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


# At the end: the drills' schemas build on STRICT and optional_like above.
from pgbackups.api.schemas.verifications import (  # noqa: E402
    VerificationChanges,
    VerificationSettingsView,
    VerificationStatusView,
)

Database.model_rebuild()
DatabaseChanges.model_rebuild()
