"""How the API shows the domain's records: display fields are computed here."""

from __future__ import annotations

from datetime import datetime

from pgbackups.api.schemas import ArchiveLink, BackupSummary, BackupView, Database, ScheduleView
from pgbackups.domain.models import BackupRecord, DatabaseRecord, KeptAs, Schedule
from pgbackups.domain.schedule import UnknownTimezone, next_run_at
from pgbackups.usecases.downloads import Download


def schedule_view(schedule: Schedule, now: datetime) -> ScheduleView:
    try:
        return ScheduleView(**schedule.model_dump(), next_run_at=next_run_at(schedule, now))
    except UnknownTimezone as error:  # this database's backups stop; the others' go on
        return ScheduleView(**schedule.model_dump(), next_run_at=None, error=str(error))


def database_view(record: DatabaseRecord, last: BackupRecord | None, now: datetime) -> Database:
    return Database(
        name=record.name,
        schedule=schedule_view(record.schedule, now),
        retention=record.retention,
        compression=record.compression,
        runner=record.runner,
        has_replica=record.has_replica,
        created_at=record.created_at,
        last_backup=(
            BackupSummary.model_validate(
                last.model_dump(include={"id", "status", "created_at", "size"})
            )
            if last is not None
            else None
        ),
    )


def backup_views(records: list[BackupRecord], kept: dict[str, KeptAs]) -> list[BackupView]:
    """The records with why retention keeps each (null for those it does not keep)."""
    return [BackupView(**dict(record), kept_as=kept.get(record.id)) for record in records]


def archive_link(download: Download) -> ArchiveLink:
    return ArchiveLink(
        download_url=download.url,
        expires_at=download.expires_at,
        filename=download.filename,
        size=download.size,
        sha256=download.sha256,
    )
