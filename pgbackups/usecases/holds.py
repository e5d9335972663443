"""Legal holds: a backup kept, whatever retention and its lock date say, until released.

The hold is S3's legal hold on the archive's version (with a backup lock; without one
the bucket has no Object Lock) and a flag on the record, which retention and DELETE
honour (`pgbackups.domain.lock.is_protected`). S3 changes first: a record never shows
a hold S3 does not have, and a failed release leaves the backup held.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import BackupNotDone
from pgbackups.domain.models import BackupRecord, DatabaseRecord
from pgbackups.services import Services
from pgbackups.usecases.backup import ShownBackups
from pgbackups.usecases.retention import kept_as

logger = Logger(child=True)


def hold_backup(services: Services, database: str, backup_id: str) -> ShownBackups:
    """Put a done backup under a legal hold (again: no change); the backup as shown after.
    BackupNotDone before it is done; DatabaseNotFound, BackupNotFound."""
    owner, record = _backup(services, database, backup_id)
    if record.status != "done":
        raise BackupNotDone(f"backup {backup_id} is {record.status}: only a done backup is held")
    return _shown(services, owner, _set_hold(services, record, held=True))


def release_backup(services: Services, database: str, backup_id: str) -> ShownBackups:
    """Lift a backup's legal hold (none: no change); retention then treats it as any other."""
    owner, record = _backup(services, database, backup_id)
    return _shown(services, owner, _set_hold(services, record, held=False))


def _backup(
    services: Services, database: str, backup_id: str
) -> tuple[DatabaseRecord, BackupRecord]:
    owner = services.catalog.get_database(database, include_removed=True)
    return owner, services.catalog.get_backup(database, backup_id)


def _shown(services: Services, owner: DatabaseRecord, record: BackupRecord) -> ShownBackups:
    return ShownBackups([record], kept_as(services, owner, [record]))


def _set_hold(services: Services, record: BackupRecord, *, held: bool) -> BackupRecord:
    if record.status == "done":  # only a done backup has an object
        services.archives.set_legal_hold(record.object_key, held)
    if record.legal_hold == held:
        return record
    changed = services.catalog.protect_backup(record.database, record.id, legal_hold=held)
    logger.info(
        "legal hold placed" if held else "legal hold released",
        extra={"database": record.database, "backup_id": record.id},
    )
    return changed
