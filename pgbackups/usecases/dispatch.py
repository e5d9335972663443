"""The hourly dispatcher: due periodic backups and restore drills, stale records,
retention sweep."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import (
    BackupInProgress,
    BackupNotFound,
    BackupNotStarted,
    PeriodicBackupExists,
)
from pgbackups.domain.models import (
    SCHEDULED_GRACE,
    BackupRecord,
    DatabaseHistory,
    DatabaseRecord,
    Health,
    backup_created_at,
)
from pgbackups.domain.restores import RestoreRecord
from pgbackups.domain.retention import plan_retention
from pgbackups.domain.schedule import (
    PeriodicSlot,
    UnknownTimezone,
    periodic_slot,
    schedule_zone,
)
from pgbackups.domain.verifications import VerificationRecord
from pgbackups.services import Services
from pgbackups.usecases.backup import publish_backup_event, schedule_backup
from pgbackups.usecases.databases import finish_secret_deletion
from pgbackups.usecases.health import refresh_health
from pgbackups.usecases.restores import reap_stale_restores
from pgbackups.usecases.retention import apply_retention
from pgbackups.usecases.verifications import reap_stale_verification, start_due_verification

logger = Logger(child=True)

# Databases swept at once: each sweep waits on DynamoDB and Lambda's network calls, not
# on this process's CPU. Within botocore's default pool of 10 connections per client.
SWEEP_THREADS = 8


@dataclass
class DispatchReport:
    scheduled: list[BackupRecord] = field(default_factory=list)
    reaped: list[BackupRecord] = field(default_factory=list)
    pruned: list[BackupRecord] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # databases whose sweep raised
    healths: list[Health] = field(default_factory=list)  # of the databases evaluated
    reaped_restores: list[RestoreRecord] = field(default_factory=list)
    verifications: list[VerificationRecord] = field(default_factory=list)  # drills started
    reaped_verifications: list[VerificationRecord] = field(default_factory=list)

    def add(self, other: DispatchReport) -> None:
        self.scheduled += other.scheduled
        self.verifications += other.verifications
        self.reaped_verifications += other.reaped_verifications
        self.reaped += other.reaped
        self.pruned += other.pruned
        self.failed += other.failed
        self.healths += other.healths


def dispatch(services: Services, at: datetime) -> DispatchReport:
    """One hourly run. `at` decides which schedules are due (the rule's time, or the
    hour `pgbackups local dispatch --at` simulates); reaping and retention go by the
    real clock. Safe to run twice in the same hour; one database's failure does not
    stop the others.

    The catalog is read once (one Scan), then the databases are swept concurrently:
    what each sweep changes goes through conditional writes, so a read a few seconds
    old can make a write refused, never a wrong one."""
    now = services.clock()
    histories = services.catalog.database_histories()
    with ThreadPoolExecutor(max_workers=SWEEP_THREADS) as pool:
        sweeps = list(pool.map(lambda history: _sweep(services, history, at, now), histories))
    report = DispatchReport()
    report.reaped_restores = reap_stale_restores(services, now)
    for sweep in sweeps:  # in the databases' order, whatever order they finished in
        report.add(sweep)
    return report


def _sweep(
    services: Services, history: DatabaseHistory, at: datetime, now: datetime
) -> DispatchReport:
    report = DispatchReport()
    database = history.database
    try:
        if database.removed_at is not None:
            # A removal whose URL deletion failed, or URLs written after it: delete them.
            finish_secret_deletion(services, database)
        reaped = _reap_stale_backup(services, history, now)
        if reaped is not None:
            report.reaped.append(reaped)
        slot = periodic_slot(database.schedule, at)
        if database.removed_at is None and slot is not None and _may_fill(slot, database):
            scheduled = _schedule_periodic_backup(services, history, slot)
            if scheduled is not None:
                report.scheduled.append(scheduled)
        if _has_retention_work(history, now):
            report.pruned += apply_retention(services, database, now)
        _sweep_verifications(services, history, at, now, report)
    except UnknownTimezone as error:
        logger.error(
            "periodic backups and retention cannot run for a database",
            extra={"database": database.name, "reason": str(error)},
        )
        report.failed.append(database.name)
    except Exception:
        logger.exception("dispatch failed for a database", extra={"database": database.name})
        report.failed.append(database.name)
    _refresh_health(services, history, report, at)
    return report


def _sweep_verifications(
    services: Services,
    history: DatabaseHistory,
    at: datetime,
    now: datetime,
    report: DispatchReport,
) -> None:
    """The database's drill given up when its runner went silent, then its next drill
    when its hour is due (one at a time: a drill still active waits)."""
    database = history.database
    reaped = reap_stale_verification(services, database, now)
    if reaped is not None:
        report.reaped_verifications.append(reaped)
        database = services.catalog.get_database(database.name, include_removed=True)
    try:
        started = start_due_verification(services, database, history.backups, at)
    except BackupNotStarted as error:
        logger.warning(
            "the drill could not be started",
            extra={"database": database.name, "reason": str(error)},
        )
        return
    if started is not None:
        report.verifications.append(started)


def _refresh_health(
    services: Services, history: DatabaseHistory, report: DispatchReport, at: datetime
) -> None:
    """Last, on its own: the database's health after this run's changes (a reaped backup
    is a failed one), and its alerts. Whatever goes wrong here leaves the sweep done.
    Judged at the run's hour, as its schedules are: `local dispatch --at` a later day
    shows what a person would be told then."""
    reaped = {backup.id: backup for backup in report.reaped}
    backups = [reaped.get(backup.id, backup) for backup in history.backups]
    try:
        change = refresh_health(services, history.database, backups, at)
    except Exception as error:
        logger.error(
            "the health of a database could not be evaluated",
            extra={"database": history.database.name, "reason": type(error).__name__},
        )
        return
    if change is not None:
        report.healths.append(change.health)


def _has_retention_work(history: DatabaseHistory, now: datetime) -> bool:
    """Whether the database has retention work, as far as the run's read shows: a deletion
    to finish, a backup retention lets go, or a removed database to forget. Retention
    itself reads the database's backups afresh; one that is needed only because of a
    backup finished since the read is done by that backup's own retention."""
    database = history.database
    if database.removed_at is not None or history.pending_deletions:
        return True
    zone = schedule_zone(database.schedule)
    return bool(plan_retention(database.retention, history.backups, now, zone).delete)


def _may_fill(slot: PeriodicSlot, database: DatabaseRecord) -> bool:
    """The due hour's run always may; a catch-up only for a database that existed when
    its day's backup fell due (one registered later starts the next day)."""
    return not slot.late_by or slot.due_at >= database.created_at


def _schedule_periodic_backup(
    services: Services, history: DatabaseHistory, slot: PeriodicSlot
) -> BackupRecord | None:
    """The day's periodic backup, unless the day has one done, running or scheduled
    (PeriodicBackupExists); a failed one (BackupNotStarted included) leaves the day
    open to the next hours."""
    database = history.database
    try:
        # Created now; the slot says which local day it is for and how late it comes.
        record = schedule_backup(
            services,
            database.name,
            "periodic",
            services.clock(),
            slot=slot,
            runner_setting=database.runner,
            recent=history.backups,
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


def _reap_stale_backup(
    services: Services, history: DatabaseHistory, now: datetime
) -> BackupRecord | None:
    """Turn a backup stuck past the function's timeout into `error`, releasing the lock."""
    database = history.database
    if database.active_backup_id is None:
        return None
    backup = next((b for b in history.backups if b.id == database.active_backup_id), None)
    if backup is None:
        # Not in the run's read (created while it read, or missing): read it again.
        try:
            backup = services.catalog.get_backup(database.name, database.active_backup_id)
        except BackupNotFound:
            _release_orphan_lock(services, database, now)
            return None
    # A record started before deadlines were recorded ran in the backup function.
    longest_run = timedelta(seconds=services.settings.backup_timeout_seconds)
    reason = backup.abandoned_reason(now, longest_run=longest_run)
    if reason is None:
        return None
    failed = backup.model_copy(
        update={"status": "error", "finished_at": now, "error": reason, "uploaded": None}
    )
    if not services.catalog.finish_backup(failed, expected_status=backup.status):
        return None
    services.archives.delete(failed.object_key)
    publish_backup_event(services, failed)
    logger.warning("stale backup reaped", extra={"database": database.name, "backup_id": backup.id})
    return failed


def _release_orphan_lock(services: Services, database: DatabaseRecord, now: datetime) -> None:
    """A lock whose record is missing: the record of a backup being created is written
    right after its lock (Catalog.create_backup), so only a lock older than the grace
    has lost its record for good (its writer stopped in between, or the record is gone).
    Nothing can finish that backup: drop the lock (and give a periodic one's day back)."""
    assert database.active_backup_id is not None
    taken_at = backup_created_at(database.active_backup_id)
    if now - taken_at <= SCHEDULED_GRACE:
        return
    services.catalog.release_lock(database.name, database.active_backup_id)
    logger.warning(
        "lock without a backup record released",
        extra={"database": database.name, "backup_id": database.active_backup_id},
    )
