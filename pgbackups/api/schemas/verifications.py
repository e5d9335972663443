"""What the verifications (restore drills) routes read and write, and a database's
drill settings in PATCH /v1/databases/{db}."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from pgbackups.api.schemas import BACKUP_REF, STRICT, optional_like
from pgbackups.domain.models import RunnerName
from pgbackups.domain.smoke import MAX_SMOKE_QUERIES, SmokeQuery
from pgbackups.domain.verifications import (
    VerificationKind,
    VerificationSettings,
    VerificationStatus,
)


class VerificationRequest(BaseModel):
    """POST /v1/databases/{db}/verifications: a drill of a backup (default: the newest
    done one) or of a point in time; at most one of the two."""

    model_config = STRICT

    backup_id: str | None = Field(
        default=None,
        pattern=BACKUP_REF,
        description="The backup to drill: its id, or `latest` (the default)",
    )
    target_time: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "A point in time of the continuous backups (RFC 3339, or `latest`) to recover "
            "and check instead of a backup"
        ),
    )


class SmokeQuerySetting(SmokeQuery):
    """A smoke query in a request: strings only."""

    model_config = STRICT


class VerificationChanges(BaseModel):
    """Drill settings to change; those left out keep their value (`hour: null` returns
    to the default hour)."""

    model_config = STRICT

    enabled: bool | None = None
    every_days: int | None = optional_like(VerificationSettings, "every_days")
    hour: int | None = optional_like(VerificationSettings, "hour")
    smoke_queries: list[SmokeQuerySetting] | None = Field(
        default=None, max_length=MAX_SMOKE_QUERIES, description="Replaces the list when given"
    )

    def changed(self) -> dict[str, Any]:
        """The fields to change: those given and not null, and `hour` when given null."""
        return {
            name: value
            for name, value in self.model_dump(exclude_unset=True).items()
            if value is not None or name == "hour"
        }


class VerificationSettingsView(BaseModel):
    enabled: bool
    every_days: int
    hour: int | None
    smoke_queries: list[SmokeQuery]


class VerificationStatusView(BaseModel):
    """The database's drills at a glance."""

    last_id: str | None
    last_status: VerificationStatus | None
    last_at: datetime | None = Field(description="When the last drill was requested")
    next_at: datetime | None = Field(description="When the dispatcher starts the next one")
    restore_seconds: float | None = Field(description="The last passed drill's restore time")


class CheckView(BaseModel):
    name: str = Field(description="`restore`, `objects`, `amcheck`, `row_counts`, `smoke N`")
    passed: bool
    detail: str
    seconds: float | None = Field(description="How long the check took; null in older drills")


class VerificationView(BaseModel):
    id: str
    database: str
    kind: VerificationKind
    backup_id: str | None
    target_time: datetime | None
    status: VerificationStatus
    runner: RunnerName | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    restore_seconds: float | None = Field(description="The restore's duration: the measured RTO")
    phases: dict[str, float] = Field(
        description=(
            "Seconds per phase, laid end to end, and `total` (the whole drill): `contents` "
            "(the archive's table of contents, read from its start), `start` (initdb, start, the "
            "drill's database), `restore`, `checks`, `stop` (the server stopped, its files "
            "removed); a point in time's `restore` is its recovery, with no `contents` or "
            "`start`. Empty in older drills and in those that could not run"
        )
    )
    server_version: str | None = Field(description="The throwaway server's version")
    source_version: str | None = Field(description="The backed-up server's version")
    checks: list[CheckView]
    tables: int | None
    rows: int | None
    report_key: str | None = Field(description="The JSON report's S3 key, beside the backup")
    report_sha256: str | None
    error: str | None


class VerificationPage(BaseModel):
    verifications: list[VerificationView] = Field(description="Newest first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class ReportLink(BaseModel):
    url: str = Field(description="Presigned S3 GET of the drill's JSON report (5 minutes)")
