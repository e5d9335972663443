"""The hourly dispatcher: due periodic backups, stale records, retention sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import BackupInProgress, BackupNotFound, PeriodicBackupExists
from pgbackups.domain.models import BackupRecord, DatabaseRecord
from pgbackups.domain.runners import abandoned_reason
from pgbackups.domain.schedule import PeriodicSlot, periodic_slot
from pgbackups.ports import Services
from pgbackups.usecases.backup import publish_backup_event, schedule_backup
from pgbackups.usecases.databases import finish_secret_deletion
from pgbackups.usecases.pruning import prune_database

logger = Logger(child=True)


@dataclass
class DispatchReport:
    scheduled: list[BackupRecord] = field(default_factory=list)
    reaped: list[BackupRecord] = field(default_factory=list)
    pruned: list[BackupRecord] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # databases whose sweep raised


def dispatch(services: Services, at: datetime) -> DispatchReport:
    """One hourly run. `at` decides which schedules are due (the rule's time, or the
    hour `pgbackups local dispatch --at` simulates); reaping and retention go by the
    real clock. Safe to run twice in the same hour; one database's failure does not
    stop the others."""
    report = DispatchReport()
    now = services.clock()
    for database in services.catalog.list_databases(include_removed=True):
        try:
            _sweep(services, database, at, now, report)
        except Exception:
            logger.exception("dispatch failed for a database", extra={"database": database.name})
            report.failed.append(database.name)
    return report


def _sweep(
    services: Services,
    database: DatabaseRecord,
    at: datetime,
    now: datetime,
    report: DispatchReport,
) -> None:
    if database.removed_at is not None:
        # A removal whose URL deletion failed, or URLs written after it: delete them.
        finish_secret_deletion(services, database)
    reaped = _reap_stale_backup(services, database, now)
    if reaped is not None:
        report.reaped.append(reaped)
    slot = periodic_slot(database.schedule, at)
    if database.removed_at is None and slot is not None and _may_fill(slot, database):
        scheduled = _schedule_periodic_backup(services, database, slot)
        if scheduled is not None:
            report.scheduled.append(scheduled)
    report.pruned += prune_database(services, database, now)


def _may_fill(slot: PeriodicSlot, database: DatabaseRecord) -> bool:
    """The due hour's run always may; a catch-up only for a database that existed when
    its day's backup fell due (one registered later starts the next day)."""
    return not slot.late_by or slot.due_at >= database.created_at


def _schedule_periodic_backup(
    services: Services, database: DatabaseRecord, slot: PeriodicSlot
) -> BackupRecord | None:
    """The day's periodic backup, unless the day has one done, running or scheduled
    (PeriodicBackupExists); a failed one (BackupNotStarted included) leaves the day
    open to the next hours."""
    try:
        # Created now; the slot says which local day it is for and how late it comes.
        record = schedule_backup(
            services,
            database.name,
            "periodic",
            services.clock(),
            slot=slot,
            runner_setting=database.runner,
        )
    except PeriodicBackupExists:
        return None
    except BackupInProgress as busy:
        logger.warning(
            "periodic backup postponed: another backup is active",
            extra={"database": database.name, "active_backup_id": busy.backup_id},
        )
        return None
    if slot.late_by:
        logger.warning(
            "periodic backup created late",
            extra={"database": database.name, "late_by_seconds": record.late_by_seconds},
        )
    return record


def _running_deadline(services: Services, backup: BackupRecord) -> datetime | None:
    """When the run of `backup` is over for sure: its own deadline, or for a record
    started before deadlines were recorded, the backup function's timeout."""
    if backup.deadline_at is not None:
        return backup.deadline_at
    if backup.started_at is None:
        return None
    return backup.started_at + timedelta(seconds=services.settings.backup_timeout_seconds)


def _reap_stale_backup(
    services: Services, database: DatabaseRecord, now: datetime
) -> BackupRecord | None:
    """Turn a backup stuck past the function's timeout into `error`, releasing the lock."""
    if database.active_backup_id is None:
        return None
    try:
        backup = services.catalog.get_backup(database.name, database.active_backup_id)
    except BackupNotFound:
        # A lock whose record is gone can never be released by a finish: drop it.
        services.catalog.release_lock(database.name, database.active_backup_id)
        return None
    reason = abandoned_reason(
        what="backup",
        status=backup.status,
        created_at=backup.created_at,
        started_at=backup.started_at,
        deadline_at=_running_deadline(services, backup),
        runner=backup.runner,
        now=now,
    )
    if reason is None:
        return None
    failed = backup.model_copy(update={"status": "error", "finished_at": now, "error": reason})
    if not services.catalog.finish_backup(failed, expected_status=backup.status):
        return None
    services.archives.delete(failed.object_key)
    publish_backup_event(services, failed)
    logger.warning("stale backup reaped", extra={"database": database.name, "backup_id": backup.id})
    return failed
