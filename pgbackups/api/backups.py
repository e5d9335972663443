"""Listing, requesting, deleting and downloading backups, as the API offers them.

Every backup shown carries `kept_as`, computed from the database's retention
policy at the time of the request. These work for a removed database too, so
its backups can still be listed, downloaded and deleted while they expire.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from zoneinfo import ZoneInfo

from aws_lambda_powertools import Logger

from pgbackups.api.schemas import ArchiveLink, BackupPage
from pgbackups.domain.errors import BackupNotDone
from pgbackups.domain.models import BackupMethod, BackupRecord, BackupStatus, DatabaseRecord
from pgbackups.domain.retention import plan_retention
from pgbackups.ports import Services
from pgbackups.usecases.backup import schedule_backup
from pgbackups.usecases.pruning import delete_backup

logger = Logger(child=True)

LATEST = "latest"  # the newest `done` backup


def _database(services: Services, name: str) -> DatabaseRecord:
    return services.catalog.get_database(name, include_removed=True)


def with_kept_as(
    services: Services, database: DatabaseRecord, records: Iterable[BackupRecord]
) -> list[BackupRecord]:
    """The records with why retention keeps each (null for those it does not keep)."""
    plan = plan_retention(
        database.retention,
        services.catalog.all_backups(database.name),
        services.clock(),
        ZoneInfo(database.schedule.timezone),
    )
    return [record.model_copy(update={"kept_as": plan.keep.get(record.id)}) for record in records]


def backup_page(
    services: Services,
    name: str,
    *,
    limit: int,
    cursor: str | None,
    status: BackupStatus | None,
    method: BackupMethod | None,
) -> BackupPage:
    database = _database(services, name)
    records, next_cursor = services.catalog.list_backups(
        name, limit=limit, cursor=cursor, status=status, method=method
    )
    return BackupPage(backups=with_kept_as(services, database, records), next_cursor=next_cursor)


def _find(services: Services, name: str, ref: str) -> BackupRecord:
    if ref == LATEST:
        return services.catalog.latest_done_backup(name)
    return services.catalog.get_backup(name, ref)


def find_backup(services: Services, name: str, ref: str) -> BackupRecord:
    """One backup by id, or `latest`: the newest `done` one."""
    database = _database(services, name)
    (record,) = with_kept_as(services, database, [_find(services, name, ref)])
    return record


def request_backup(services: Services, name: str) -> BackupRecord:
    """A manual backup: recorded as `scheduled` (taking the lock), then started."""
    services.catalog.get_database(name)  # a removed database takes no new backups
    # BackupInProgress: 409 with its id; BackupNotStarted: 503, the record is an error.
    return schedule_backup(services, name, "manual", services.clock())


def remove_backup(services: Services, name: str, backup_id: str) -> None:
    _database(services, name)
    delete_backup(services, name, backup_id)  # Conflict (409) while scheduled or running
    logger.info("backup deleted", extra={"database": name, "backup_id": backup_id})


def archive_link(services: Services, name: str, ref: str, expires_in: int) -> ArchiveLink:
    """A presigned download of a `done` backup's archive, saved as `<name>.pgsql`."""
    record = find_backup(services, name, ref)
    if record.status != "done":
        raise BackupNotDone(
            f"backup {record.id} is {record.status}: only a done backup can be downloaded",
            backup_id=record.id,
        )
    url, expires_at = services.archives.download_url(record, timedelta(seconds=expires_in))
    return ArchiveLink(
        download_url=url,
        expires_at=expires_at,
        filename=record.filename,
        size=record.size,
        sha256=record.sha256,
    )
