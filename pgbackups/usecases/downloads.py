"""Downloading an archive: a presigned link to a `done` backup's object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pgbackups.domain.errors import BackupNotDone
from pgbackups.services import Services
from pgbackups.usecases.backup import find_backup


@dataclass(frozen=True)
class Download:
    url: str  # presigned GET, saved as `filename`
    expires_at: datetime
    filename: str
    size: int | None
    sha256: str | None


# How a backup that cannot be downloaded is described in the refusal, in plain English.
_STATE_PHRASES = {"scheduled": "is scheduled", "running": "is still running", "error": "failed"}


def archive_download(services: Services, database: str, ref: str, lifetime: timedelta) -> Download:
    """A link to the archive of backup `ref` (an id or `latest`) of a database, removed or
    not; DatabaseNotFound, BackupNotFound, or BackupNotDone unless done."""
    services.catalog.get_database(database, include_removed=True)
    record = find_backup(services, database, ref)
    if record.status != "done":
        raise BackupNotDone(
            f"backup {record.id} {_STATE_PHRASES.get(record.status, record.status)}: "
            "only a done backup can be downloaded",
            backup_id=record.id,
        )
    url, expires_at = services.archives.download_url(record, lifetime)
    return Download(url, expires_at, record.filename, record.size, record.sha256)
