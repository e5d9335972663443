"""What the restores routes read and write."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from pgbackups.api.schemas import BACKUP_REF, STRICT, ConnectionUrl
from pgbackups.domain.models import (
    BackupStatus,
    RunnerName,
)

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
        description=(
            "A point in time to restore (RFC 3339 with its offset, or `latest`), inside a "
            "recoverable range of the continuous backups; run on the Fargate runner (422 "
            "not_supported without one)"
        ),
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
    restored: int = Field(
        description=(
            "pg_restore's entries done; for a point in time, the WAL files fetched for "
            "replay while `total` is set, then the entries moved into the target"
        )
    )
    total: int | None = Field(description="What it works through; null if unknown")


class RestoreView(BaseModel):
    """A restore as the API shows it: never its target's URL."""

    id: str
    kind: Literal["backup", "point_in_time"]
    backup_id: str | None
    target_time: datetime | None = Field(
        description="A point-in-time restore's target; null: a backup's, or `latest`"
    )
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
