"""The dispatcher's part of restore drills: the database's drill started when its hour is
due (of the newest done backup, or of a random second of the newest recoverable range),
and a drill whose runner stopped without a word reaped."""

from __future__ import annotations

import random
from datetime import datetime

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import PgBackupsError, VerificationInProgress
from pgbackups.domain.models import BackupRecord, DatabaseRecord
from pgbackups.domain.recovery import recoverable_ranges
from pgbackups.domain.verifications import (
    VerificationRecord,
    VerificationState,
    point_in_time_due,
    random_second,
    verification_due,
)
from pgbackups.services import Services
from pgbackups.usecases.verifications.finish import record_finished
from pgbackups.usecases.verifications.request import server_major, start_drill, version_text

logger = Logger(child=True)


def start_due_verification(
    services: Services, database: DatabaseRecord, backups: list[BackupRecord], at: datetime
) -> VerificationRecord | None:
    """The database's drill when its hour is due at `at`: of its newest done backup, on
    the Fargate runner, one at a time; with continuous backups, the next run drills a
    random second of the newest recoverable range. None when nothing is due."""
    settings = database.verification
    if not settings.enabled or database.removed_at is not None or services.fargate is None:
        return None
    if database.active_verification_id is not None:
        return None
    state = database.verification_state or VerificationState()
    try:
        if verification_due(settings, database.schedule, state.last_at, at):
            return _drill_newest_backup(services, database, backups)
        if point_in_time_due(state, at):
            return _drill_random_point_in_time(services, database)
    except VerificationInProgress:
        return None
    return None


def _drill_newest_backup(
    services: Services, database: DatabaseRecord, backups: list[BackupRecord]
) -> VerificationRecord | None:
    backup = next((b for b in backups if b.status == "done"), None)
    major = server_major(backup.server_version) if backup is not None else None
    if backup is None or major is None:
        logger.info("drill due but no done backup to drill", extra={"database": database.name})
        return None
    return start_drill(services, database, backup.id, backup.server_version, major)


def _drill_random_point_in_time(
    services: Services, database: DatabaseRecord
) -> VerificationRecord | None:
    """A drill of a random second of the newest recoverable range, when continuous
    backups are on and have one."""
    state = services.pitr.get_state(database.name)
    if state is None or not state.enabled:
        return None
    ranges = recoverable_ranges(
        services.pitr.chains(database.name), services.pitr.base_backups(database.name)
    )
    if not ranges:
        return None
    newest = ranges[-1]
    moment = random_second(newest.start, newest.end, random.uniform)
    return start_drill(
        services, database, newest.base.id, version_text(newest.chain.server_version_num),
        newest.chain.server_major, target_time=moment, kind="point_in_time",
    )  # fmt: skip


def reap_stale_verification(
    services: Services, database: DatabaseRecord, now: datetime
) -> VerificationRecord | None:
    """The database's drill whose runner stopped without a word (killed at its deadline,
    crashed) turned into `failed` and its lock freed: the reaper's rule for every run."""
    if database.active_verification_id is None:
        return None
    try:
        record = services.verifications.get_verification(
            database.name, database.active_verification_id
        )
    except PgBackupsError:
        return None
    reason = record.abandoned_reason(now)
    if reason is None:
        return None
    failed = record.failed(reason, now)
    state = database.verification_state or VerificationState()
    if not record_finished(services, failed, state, expected_status=record.status):
        return None
    logger.warning("stale drill reaped", extra={"verification_id": record.id})
    return failed
