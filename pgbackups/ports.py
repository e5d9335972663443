"""The small interfaces the use cases depend on; `pgbackups.adapters` implements them on AWS.

Use cases see records and domain errors only: never a boto3 client or response.
Tests pass the real adapters on moto, or a recording stand-in where AWS cannot
run the thing (a Lambda invocation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO, Protocol

from pgbackups.domain.models import (
    BackupMethod,
    BackupRecord,
    BackupRequest,
    BackupStatus,
    ConnectionInfo,
    DatabaseRecord,
    RetentionPolicy,
    Schedule,
    utcnow,
)
from pgbackups.postgres.pgtools import Launcher, PgTools, launch
from pgbackups.settings import Settings


class Catalog(Protocol):
    """Databases and backups, and the one-active-backup lock (DynamoDB)."""

    def create_database(self, record: DatabaseRecord) -> None: ...
    def get_database(self, name: str, *, include_removed: bool = False) -> DatabaseRecord: ...
    def list_databases(self, *, include_removed: bool = False) -> list[DatabaseRecord]: ...
    def update_database(
        self,
        name: str,
        *,
        schedule: Schedule | None = None,
        retention: RetentionPolicy | None = None,
        compression: str | None = None,
        has_replica: bool | None = None,
        runner: str | None = None,
    ) -> DatabaseRecord: ...
    def remove_database(self, name: str, at: datetime) -> None: ...
    def forget_database(self, name: str) -> None: ...
    def claim_secret_deletion(self, record: DatabaseRecord, at: datetime) -> bool: ...
    def secret_deleted(self, name: str, claimed_at: datetime) -> None: ...
    def create_backup(self, record: BackupRecord, *, periodic_day: str | None = None) -> None: ...
    def get_backup(self, database: str, backup_id: str) -> BackupRecord: ...
    def latest_done_backup(self, database: str) -> BackupRecord: ...
    def list_backups(
        self,
        database: str,
        *,
        limit: int,
        cursor: str | None = None,
        status: BackupStatus | None = None,
        method: BackupMethod | None = None,
    ) -> tuple[list[BackupRecord], str | None]: ...
    def all_backups(self, database: str) -> list[BackupRecord]: ...
    def get_backups(self, keys: list[tuple[str, str]]) -> list[BackupRecord]: ...
    def backups_since(self, database: str, oldest_id: str) -> list[BackupRecord]: ...
    def pending_deletions(self, database: str) -> list[str]: ...
    def start_backup(
        self, database: str, backup_id: str, at: datetime, *, runner: str, deadline_at: datetime
    ) -> BackupRecord | None: ...
    def finish_backup(self, record: BackupRecord, *, expected_status: str = "running") -> bool: ...
    def release_lock(self, database: str, backup_id: str) -> None: ...
    def mark_deleting(self, database: str, backup_id: str, at: datetime) -> BackupRecord: ...
    def delete_backup_record(self, database: str, backup_id: str) -> None: ...


class Archives(Protocol):
    """Archive objects (S3): streamed uploads, presigned downloads, deletions."""

    def upload_stream(
        self, key: str, stream: BinaryIO, expected_size: int | None = None
    ) -> None: ...
    def download_url(self, record: BackupRecord, lifetime: timedelta) -> tuple[str, datetime]: ...
    def delete(self, key: str) -> None: ...
    def uploaded_so_far(self, key: str) -> int | None: ...


class Secrets(Protocol):
    """Connection URLs, write-only for the API (Secrets Manager)."""

    def put(self, database: str, info: ConnectionInfo) -> None: ...
    def get(self, database: str) -> ConnectionInfo: ...
    def delete(self, database: str) -> None: ...


class Events(Protocol):
    """Notifications of finished backups (EventBridge)."""

    def publish(self, record: BackupRecord) -> None: ...


class BackupRunner(Protocol):
    """Starts the backup code for a `scheduled` record somewhere it may run to the end."""

    name: str

    def start(self, request: BackupRequest) -> None: ...


@dataclass
class Services:
    """The use cases' collaborators, built once per process (`pgbackups.wiring.build_services`)."""

    settings: Settings
    catalog: Catalog
    archives: Archives
    secrets: Secrets
    events: Events
    runner: BackupRunner  # the backup function: the default
    tools: PgTools
    clock: Callable[[], datetime] = field(default=utcnow)
    launcher: Launcher = field(default=launch)
    # The container runner for backups that outgrow Lambda; None where the
    # deployment has none (no subnets for its tasks).
    fargate: BackupRunner | None = None
