"""Retention: deleting backups, one at a time on request or as the policy lets them go.

A deletion takes three steps, in this order:

1. mark the record `deleting` (refused while the backup is scheduled or running);
   from then on the API no longer shows it;
2. delete the S3 object (idempotent);
3. delete the record.

If it stops halfway, what is left is a record marked `deleting`, with or
without its object, never an object that no record knows of nor a visible
record pointing at a missing object. Every later application of retention to that database
(after each backup and in the dispatcher's hourly sweep) finishes pending
deletions first.

Object Lock (`pgbackups.domain.lock`): a backup whose `locked_until` has not passed, or
under a legal hold, is not deleted: a user's DELETE is refused (BackupLocked) and
retention leaves it, record and object, for a later application once its date has
passed (each backup and the hourly sweep apply it again). Retention also extends the
date of each periodic backup it keeps to the end of the longest window that keeps it.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import BackupLocked, BackupNotFound
from pgbackups.domain.lock import is_protected, retention_keeps_until
from pgbackups.domain.models import (
    BackupRecord,
    DatabaseRecord,
    KeptAs,
    archive_key,
    to_rfc3339,
)
from pgbackups.domain.retention import RetentionPlan, plan_retention
from pgbackups.domain.schedule import UnknownTimezone, schedule_zone
from pgbackups.services import Services

logger = Logger(child=True)


def delete_backup(services: Services, database: str, backup_id: str) -> BackupRecord:
    """A user's deletion (a removed database's backups too, while they expire): Conflict
    while the backup is scheduled or running; DatabaseNotFound, or BackupNotFound."""
    services.catalog.get_database(database, include_removed=True)
    return _delete(services, database, backup_id)  # BackupLocked while locked or held


def _delete(services: Services, database: str, backup_id: str) -> BackupRecord:
    record = services.catalog.mark_deleting(database, backup_id, services.clock())
    services.archives.delete(record.object_key)
    _delete_drill_reports(services, database, backup_id)
    services.catalog.delete_backup_record(database, backup_id)
    logger.info("backup deleted", extra={"database": database, "backup_id": backup_id})
    return record


def _delete_drill_reports(services: Services, database: str, backup_id: str) -> None:
    """The JSON reports of the backup's drills, beside it, go with it (their records stay:
    the history of drills)."""
    for key in services.verifications.report_keys(database, backup_id):
        services.archives.delete(key)


def _delete_if_still_there(services: Services, record: BackupRecord) -> BackupRecord | None:
    """Delete a backup of the retention plan; one deleted meanwhile (a user's DELETE, another
    application of retention) is what the plan wanted: already deleted, and the rest of the plan goes on.
    One held (or locked) meanwhile is kept: None."""
    try:
        return _delete(services, record.database, record.id)
    except BackupNotFound:
        return record
    except BackupLocked:
        return None


def apply_retention(
    services: Services, database: DatabaseRecord, now: datetime
) -> list[BackupRecord]:
    """Finish pending deletions, then delete what the retention policy does not keep."""
    catalog = services.catalog
    for backup_id in catalog.pending_deletions(database.name):
        services.archives.delete(archive_key(database.name, backup_id))
        _delete_drill_reports(services, database.name, backup_id)
        catalog.delete_backup_record(database.name, backup_id)
    backups = catalog.all_backups(database.name)
    zone = schedule_zone(database.schedule)
    plan = plan_retention(database.retention, backups, now, zone)
    _extend_locks(services, database, backups, plan, zone)
    deleted = [
        gone
        for record in plan.delete
        if not is_protected(record, now)  # kept until its date, or its release
        and (gone := _delete_if_still_there(services, record)) is not None
    ]
    if database.removed_at is not None and len(deleted) == len(backups):
        catalog.forget_database(database.name)
    return deleted


def _extend_locks(
    services: Services,
    database: DatabaseRecord,
    backups: list[BackupRecord],
    plan: RetentionPlan,
    zone: ZoneInfo,
) -> None:
    """Lock each kept periodic backup until the end of the longest window that keeps it,
    when that is later than its date (S3 first, then the record: a record never shows a
    date S3 does not hold)."""
    if not services.settings.backup_lock.enabled:
        return
    for record in backups:
        if record.id not in plan.keep or record.locked_until is None:
            continue  # only what the lock locked: a backup from before it has no version locked
        until = retention_keeps_until(database.retention, record, zone)
        if until is None or until <= record.locked_until:
            continue
        services.archives.extend_lock(record.object_key, until)
        services.catalog.protect_backup(record.database, record.id, locked_until=until)
        logger.info(
            "backup lock extended",
            extra={"backup_id": record.id, "locked_until": to_rfc3339(until)},
        )


def kept_as(
    services: Services, database: DatabaseRecord, records: list[BackupRecord]
) -> dict[str, KeptAs]:
    """Why retention keeps each of `records` (absent: it does not).

    Only a done backup is kept or not, and that depends only on the backups
    created after it (the newest of its day, the newest manual ones, the newest
    done), so only those are read, not the database's whole history; nothing is
    read for a backup still on its way (what a client polls). A database whose schedule's
    time zone is unknown here keeps nothing it can tell (its schedule says why, and its
    retention does not run): its backups are still listed.
    """
    done = [record.id for record in records if record.status == "done"]
    if not done:
        return {}
    try:
        zone = schedule_zone(database.schedule)
    except UnknownTimezone:
        return {}
    since = services.catalog.backups_since(database.name, min(done))
    return plan_retention(database.retention, since, services.clock(), zone).keep
