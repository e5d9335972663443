"""Registering, changing, re-scheduling and removing databases.

Connection URLs go to Secrets Manager only after a real connection accepted
them, and never anywhere else: not in the catalog, not in a record, not in a log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import (
    ConnectionFailed,
    ConnectionParameterNotAllowed,
    DatabaseExists,
    DatabaseNotFound,
    InvalidInput,
)
from pgbackups.domain.models import (
    SECRET_DELETION_LEASE,
    Alerting,
    BackupRecord,
    ConnectionInfo,
    DatabaseRecord,
    RetentionPolicy,
    RunnerSetting,
    Schedule,
)
from pgbackups.domain.verifications import VerificationSettings
from pgbackups.postgres import probe
from pgbackups.postgres.urls import registered_connection
from pgbackups.services import Services
from pgbackups.usecases.backup import NO_FARGATE
from pgbackups.usecases.pitr import forget_pitr
from pgbackups.usecases.verifications import NO_FARGATE_FOR_DRILLS

logger = Logger(child=True)


@dataclass(frozen=True)
class NewDatabase:
    """A database to register; what is left None takes the defaults."""

    name: str
    url: str
    replica_url: str | None = None
    schedule: Schedule | None = None
    retention: RetentionPolicy | None = None
    compression: str | None = None
    runner: RunnerSetting | None = None
    alerting: Alerting | None = None

    def __repr__(self) -> str:  # never print a URL by accident
        return f"NewDatabase(name={self.name!r})"


@dataclass(frozen=True)
class DatabaseChanges:
    """What to change; None (or an empty mapping) leaves a setting as it is.

    `schedule` and `retention` hold only the fields to change.
    """

    url: str | None = None
    replica_url: str | None = None
    remove_replica: bool = False
    schedule: Mapping[str, Any] = field(default_factory=dict)
    retention: Mapping[str, Any] = field(default_factory=dict)
    compression: str | None = None
    runner: RunnerSetting | None = None
    alerting: Mapping[str, Any] = field(default_factory=dict)
    verification: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print a URL by accident
        return f"DatabaseChanges(schedule={dict(self.schedule)}, retention={dict(self.retention)})"


def databases_with_last_backup(
    services: Services, records: list[DatabaseRecord]
) -> list[tuple[DatabaseRecord, BackupRecord | None]]:
    """Each database with its newest backup (whatever its status), in batched reads."""
    keys = [(r.name, r.last_backup_id) for r in records if r.last_backup_id is not None]
    newest = {(b.database, b.id): b for b in services.catalog.get_backups(keys)}
    result = []
    for record in records:
        last = newest.get((record.name, record.last_backup_id or ""))
        if last is None and record.last_backup_id is not None:
            # The newest one was deleted: the next newest, if any (rare: one query).
            page, _ = services.catalog.list_backups(record.name, limit=1)
            last = page[0] if page else None
        result.append((record, last))
    return result


def check_connection(url: str, field: str) -> None:
    """A real connection to `url`, or ConnectionFailed / ConnectionParameterNotAllowed
    naming the field (URL redacted)."""
    try:
        # Exactly the connection string and password that pg_dump will get.
        probe.probe(registered_connection(url))
    except ConnectionFailed as refused:
        raise ConnectionFailed(f"{field}: {refused.message}", field=field) from None
    except ConnectionParameterNotAllowed as refused:
        raise ConnectionParameterNotAllowed(
            f"{field}: {refused.message}", field=field, **refused.details
        ) from None


def check_runner(services: Services, runner: RunnerSetting | None) -> None:
    """`fargate` only where the deployment has a Fargate runner."""
    if runner == "fargate" and services.fargate is None:
        raise InvalidInput(NO_FARGATE, field="runner")


def register_database(services: Services, new: NewDatabase) -> DatabaseRecord:
    check_runner(services, new.runner)
    _refuse_existing(services, new.name)
    check_connection(new.url, "url")
    if new.replica_url is not None:
        check_connection(new.replica_url, "replica_url")
    record = DatabaseRecord(
        name=new.name,
        schedule=new.schedule or Schedule(),
        retention=new.retention or RetentionPolicy(),
        compression=new.compression or services.settings.default_compression,
        runner=new.runner or "auto",
        alerting=new.alerting or Alerting(),
        has_replica=new.replica_url is not None,
        created_at=services.clock(),
    )
    # The catalog decides between concurrent registrations (a conditional put):
    # only the winner writes the secret, so a loser never overwrites its URL.
    services.catalog.create_database(record)  # DatabaseExists
    try:
        services.secrets.put(new.name, ConnectionInfo(new.url, new.replica_url))
    except Exception:
        _withdraw(services, record)
        raise
    _unless_removed_meanwhile(services, record)
    logger.info("database registered", extra={"database": new.name})
    return record


def _withdraw(services: Services, record: DatabaseRecord) -> None:
    """Undo a registration whose URLs could not be stored. If even deleting what may
    have been written fails, the removed record stays for the hourly sweep to finish."""
    at = services.clock()
    services.catalog.remove_database(record.name, at)
    try:
        services.secrets.delete(record.name)
    except Exception:
        logger.exception("could not delete the URLs of a withdrawn registration")
        return
    services.catalog.secret_deleted(record.name, at)
    services.catalog.forget_database(record.name)


def _unless_removed_meanwhile(services: Services, written_for: DatabaseRecord) -> None:
    """URLs just written for a database that a DELETE removed meanwhile are deleted now
    (the removal's own deletion ran before they were written)."""
    current = services.catalog.get_database(written_for.name, include_removed=True)
    if current.removed_at is not None and current.created_at == written_for.created_at:
        finish_secret_deletion(services, current)


def _refuse_existing(services: Services, name: str) -> None:
    """DatabaseExists before connecting anywhere when the name is taken."""
    try:
        existing = services.catalog.get_database(name, include_removed=True)
    except DatabaseNotFound:
        return
    if existing.removed_at is None:
        raise DatabaseExists(f"database {name} already exists")
    deleting = existing.secret_deletion
    if deleting is not None and services.clock() - deleting < SECRET_DELETION_LEASE:
        raise DatabaseExists(
            f"database {name} is being removed: register it again in a few minutes"
        )
    if existing.active_backup_id is not None:
        raise DatabaseExists(
            f"database {name} was removed and its last backup is still running: "
            "register it again once that backup has finished"
        )


def change_database(services: Services, name: str, changes: DatabaseChanges) -> DatabaseRecord:
    """Apply `changes`, each setting (and each field of the schedule and retention)
    written on its own, and the URLs over the version read: concurrent changes all
    land, or one is refused with Conflict when the URLs kept changing under it."""
    current = services.catalog.get_database(name)
    check_runner(services, changes.runner)
    schedule = _checked(current.schedule, changes.schedule)
    retention = _checked(current.retention, changes.retention)
    alerting = (
        current.alerting.model_validate(current.alerting.model_dump() | dict(changes.alerting))
        if changes.alerting
        else None
    )
    verification = _verification(services, current, changes.verification)
    if changes.url is not None:
        check_connection(changes.url, "url")
    if changes.replica_url is not None:
        check_connection(changes.replica_url, "replica_url")

    if changes.url is not None or changes.replica_url is not None or changes.remove_replica:

        def changed(stored: ConnectionInfo) -> ConnectionInfo:
            replica_url = changes.replica_url or stored.replica_url
            return ConnectionInfo(
                changes.url or stored.url, None if changes.remove_replica else replica_url
            )

        urls = services.secrets.change(name, changed)
        _unless_removed_meanwhile(services, current)
        services.catalog.record_replica(name, urls.replica_url is not None, urls.version)
        logger.info("connection URLs changed", extra={"database": name})

    return services.catalog.update_database(
        name,
        schedule=schedule,
        retention=retention,
        compression=changes.compression,
        runner=changes.runner,
        alerting=alerting,
        verification=verification,
    )


def _verification(
    services: Services, current: DatabaseRecord, changes: Mapping[str, Any]
) -> VerificationSettings | None:
    """The drill settings with `changes` applied (None: unchanged); enabling them starts
    the overdue rule's count."""
    if not changes:
        return None
    changed = VerificationSettings.model_validate(current.verification.model_dump() | dict(changes))
    if changed.enabled and services.fargate is None:
        raise InvalidInput(
            f"verification.enabled: {NO_FARGATE_FOR_DRILLS}", field="verification.enabled"
        )
    if changed.enabled and not current.verification.enabled:
        changed = changed.model_copy(update={"enabled_since": services.clock()})
    return changed


def change_schedule(services: Services, name: str, changes: Mapping[str, Any]) -> Schedule:
    """The database's schedule with `changes` applied (the hour stays in its time zone);
    only the fields changed are written, so a concurrent change of the others lands."""
    current = services.catalog.get_database(name)
    schedule = _checked(current.schedule, changes)
    if not schedule:
        return current.schedule
    return services.catalog.update_database(name, schedule=schedule).schedule


def remove_database(services: Services, name: str) -> None:
    """Stop its schedule and forget its URLs; its backups expire under its last policy.

    Removing a database already removed is DatabaseNotFound, but first finishes
    the deletion of its URLs if that failed the first time (a retried DELETE)."""
    at = services.clock()
    try:
        services.catalog.remove_database(name, at)
    except DatabaseNotFound:
        with contextlib.suppress(DatabaseNotFound):
            finish_secret_deletion(
                services, services.catalog.get_database(name, include_removed=True)
            )
        raise
    forget_pitr(services, name)  # the server must not keep WAL for nobody
    services.secrets.delete(name)
    services.catalog.secret_deleted(name, at)
    logger.info("database removed", extra={"database": name})


def finish_secret_deletion(services: Services, record: DatabaseRecord) -> bool:
    """Delete the URLs of a removed database, if it is still that removed database.

    For a removal whose deletion failed, a DELETE racing a registration or a change
    (URLs written after the removal deleted them), and the hourly sweep. The claim
    in the catalog keeps a registration of the same name from slipping in between.
    """
    if record.removed_at is None:
        return False
    at = services.clock()
    if not services.catalog.claim_secret_deletion(record, at):
        return False
    services.secrets.delete(record.name)
    services.catalog.secret_deleted(record.name, at)
    return True


def _checked[Settings: (Schedule, RetentionPolicy)](
    current: Settings, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The changed fields as stored, once `current` with them is valid (or ValidationError)."""
    if not changes:
        return {}
    merged = current.model_validate(current.model_dump() | dict(changes))
    return merged.model_dump(mode="json", include=set(changes))


def list_databases(services: Services) -> list[tuple[DatabaseRecord, BackupRecord | None]]:
    """The registered databases, each with its newest backup."""
    return databases_with_last_backup(services, services.catalog.list_databases())


def show_database(services: Services, name: str) -> tuple[DatabaseRecord, BackupRecord | None]:
    """One registered database with its newest backup; DatabaseNotFound if there is none."""
    ((record, last),) = databases_with_last_backup(services, [services.catalog.get_database(name)])
    return record, last


def show_schedule(services: Services, name: str) -> Schedule:
    """When a registered database's periodic backups run; DatabaseNotFound if there is none."""
    return services.catalog.get_database(name).schedule
