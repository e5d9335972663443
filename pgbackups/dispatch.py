"""The hourly dispatcher: due periodic backups, stale records, retention sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from pgbackups.errors import BackupInProgress, BackupNotFound, PeriodicBackupExists
from pgbackups.models import BackupRecord, DatabaseRecord
from pgbackups.pruning import prune_database
from pgbackups.schedule import periodic_day, schedule_due_at
from pgbackups.services import Services

logger = Logger(child=True)

# A `scheduled` record whose async invocation never started it.
SCHEDULED_GRACE = timedelta(minutes=30)
# Beyond the backup function's timeout, allowing for Lambda's own retry delays.
RUNNING_GRACE = timedelta(minutes=5)


@dataclass
class DispatchReport:
    scheduled: list[BackupRecord] = field(default_factory=list)
    reaped: list[BackupRecord] = field(default_factory=list)
    pruned: list[BackupRecord] = field(default_factory=list)


def dispatch(services: Services, at: datetime) -> DispatchReport:
    """One hourly run, as if the clock said `at`. Safe to run twice in the same hour."""
    report = DispatchReport()
    for database in services.catalog.list_databases(include_removed=True):
        reaped = _reap_stale_backup(services, database, at)
        if reaped is not None:
            report.reaped.append(reaped)
        if database.removed_at is None and schedule_due_at(database.schedule, at):
            scheduled = _schedule_periodic_backup(services, database, at)
            if scheduled is not None:
                report.scheduled.append(scheduled)
        try:
            report.pruned += prune_database(services, database, at)
        except Exception:
            logger.exception("retention sweep failed", extra={"database": database.name})
    return report


def _schedule_periodic_backup(
    services: Services, database: DatabaseRecord, at: datetime
) -> BackupRecord | None:
    record = BackupRecord.new(database.name, "periodic", at)
    try:
        services.catalog.create_backup(
            record, periodic_day=periodic_day(at, database.schedule.timezone)
        )
    except PeriodicBackupExists:
        return None
    except BackupInProgress as busy:
        logger.warning(
            "periodic backup skipped: another backup is active",
            extra={"database": database.name, "active_backup_id": busy.backup_id},
        )
        return None
    services.invoker.invoke(database.name, record.id)
    logger.info(
        "periodic backup scheduled", extra={"database": database.name, "backup_id": record.id}
    )
    return record


def _reap_stale_backup(
    services: Services, database: DatabaseRecord, at: datetime
) -> BackupRecord | None:
    """Turn a backup stuck past the function's timeout into `error`, releasing the lock."""
    if database.active_backup_id is None:
        return None
    try:
        backup = services.catalog.get_backup(database.name, database.active_backup_id)
    except BackupNotFound:
        return None
    timeout = timedelta(seconds=services.settings.backup_timeout_seconds)
    if (
        backup.status == "running"
        and backup.started_at
        and at - backup.started_at > timeout + RUNNING_GRACE
    ):
        reason = (
            "timed out: the backup function stopped without finishing "
            f"(no result {int((timeout + RUNNING_GRACE).total_seconds() // 60)} minutes after it started)"
        )
    elif backup.status == "scheduled" and at - backup.created_at > SCHEDULED_GRACE:
        reason = "the backup function never started this backup"
    else:
        return None
    failed = backup.model_copy(update={"status": "error", "finished_at": at, "error": reason})
    if not services.catalog.finish_backup(failed, expected_status=backup.status):
        return None
    services.archives.delete(failed.object_key)
    services.events.publish(failed)
    logger.warning("stale backup reaped", extra={"database": database.name, "backup_id": backup.id})
    return failed
