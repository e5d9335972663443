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

from pgbackups.api.errors import BackupNotStarted
from pgbackups.api.schemas import ArchiveLink, BackupPage
from pgbackups.errors import BackupNotDone
from pgbackups.models import BackupMethod, BackupRecord, BackupStatus, DatabaseRecord
from pgbackups.pruning import delete_backup
from pgbackups.retention import plan_retention
from pgbackups.services import Services

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
    record = BackupRecord.new(name, "manual", services.clock())
    services.catalog.create_backup(record)  # BackupInProgress: 409 with its id
    try:
        services.invoker.invoke(name, record.id)
    except Exception as error:  # whatever the invoker's fault, the lock must be released
        return _not_started(services, record, error)
    logger.info("manual backup scheduled", extra={"database": name, "backup_id": record.id})
    (shown,) = with_kept_as(services, _database(services, name), [record])
    return shown


def _not_started(services: Services, record: BackupRecord, error: Exception) -> BackupRecord:
    """Finish the record as `error` so the database is not left locked, then say so."""
    logger.exception("the backup function could not be invoked", extra={"backup_id": record.id})
    reason = f"the backup function could not be started ({type(error).__name__})"
    failed = record.model_copy(
        update={"status": "error", "finished_at": services.clock(), "error": reason}
    )
    if not services.catalog.finish_backup(failed, expected_status="scheduled"):
        # The invocation went through after all (the error came with its answer):
        # the backup is under way.
        return find_backup(services, record.database, record.id)
    raise BackupNotStarted(
        f"backup {record.id} of {record.database} could not be started and was recorded "
        "as failed; try again in a moment",
        backup_id=record.id,
    )


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
