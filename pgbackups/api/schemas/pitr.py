"""What the continuous-backups routes read and write."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pgbackups.domain.models import (
    RunnerName,
)
from pgbackups.domain.pitr import DEFAULT_BASE_BACKUP_EVERY_DAYS, DEFAULT_WINDOW_DAYS, PitrStatus


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
