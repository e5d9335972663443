"""Registering, changing and removing databases, and how the API shows them.

Connection URLs go to Secrets Manager only after a real connection accepted
them, and never anywhere else: not in DynamoDB, not in a response, not in a log.
"""

from __future__ import annotations

from datetime import datetime

from aws_lambda_powertools import Logger

from pgbackups.api.schemas import (
    BackupSummary,
    Database,
    DatabaseChanges,
    DatabaseRegistration,
    RetentionChanges,
    ScheduleChanges,
    ScheduleView,
)
from pgbackups.domain.errors import ConnectionFailed, DatabaseExists, DatabaseNotFound
from pgbackups.domain.models import ConnectionInfo, DatabaseRecord, RetentionPolicy, Schedule
from pgbackups.domain.schedule import next_run_at
from pgbackups.ports import Services
from pgbackups.postgres import probe as connections

logger = Logger(child=True)


def check_connection(url: str, field: str) -> None:
    """A real connection to `url`, or 422 connection_failed naming the field (URL redacted)."""
    try:
        connections.probe(url)
    except ConnectionFailed as refused:
        raise ConnectionFailed(f"{field}: {refused.message}", field=field) from None


def register_database(services: Services, registration: DatabaseRegistration) -> DatabaseRecord:
    name = registration.name
    _refuse_existing(services, name)
    check_connection(registration.url, "url")
    if registration.replica_url is not None:
        check_connection(registration.replica_url, "replica_url")
    record = DatabaseRecord(
        name=name,
        schedule=registration.schedule or Schedule(),
        retention=registration.retention or RetentionPolicy(),
        compression=registration.compression or services.settings.default_compression,
        has_replica=registration.replica_url is not None,
        created_at=services.clock(),
    )
    # The catalog decides between concurrent registrations (a conditional put):
    # only the winner writes the secret, so a loser never overwrites its URL.
    services.catalog.create_database(record)  # DatabaseExists: 409
    try:
        services.secrets.put(name, ConnectionInfo(registration.url, registration.replica_url))
    except Exception:
        services.catalog.remove_database(name, services.clock())
        services.catalog.forget_database(name)
        raise
    logger.info("database registered", extra={"database": name})
    return record


def _refuse_existing(services: Services, name: str) -> None:
    """409 before connecting anywhere when the name is taken."""
    try:
        existing = services.catalog.get_database(name, include_removed=True)
    except DatabaseNotFound:
        return
    if existing.removed_at is None:
        raise DatabaseExists(f"database {name} already exists")
    if existing.active_backup_id is not None:
        raise DatabaseExists(
            f"database {name} was removed and its last backup is still running: "
            "register it again once that backup has finished"
        )


def change_database(services: Services, name: str, changes: DatabaseChanges) -> DatabaseRecord:
    current = services.catalog.get_database(name)
    if changes.url is not None:
        check_connection(changes.url, "url")
    if changes.replica_url is not None:
        check_connection(changes.replica_url, "replica_url")

    has_replica: bool | None = None
    if changes.url is not None or changes.replica_url is not None or changes.removes_replica:
        stored = services.secrets.get(name)
        replica_url = None if changes.removes_replica else changes.replica_url or stored.replica_url
        services.secrets.put(name, ConnectionInfo(changes.url or stored.url, replica_url))
        has_replica = replica_url is not None
        logger.info("connection URLs changed", extra={"database": name})

    return services.catalog.update_database(
        name,
        schedule=merged(current.schedule, changes.schedule),
        retention=merged(current.retention, changes.retention),
        compression=changes.compression,
        has_replica=has_replica,
    )


def merged[Settings: (Schedule, RetentionPolicy)](
    current: Settings, changes: ScheduleChanges | RetentionChanges | None
) -> Settings | None:
    """`current` with the fields given in `changes` replaced; None when nothing changes."""
    given = changes.model_dump(exclude_none=True) if changes is not None else {}
    return current.model_validate(current.model_dump() | given) if given else None


def change_schedule(services: Services, name: str, changes: ScheduleChanges) -> Schedule:
    current = services.catalog.get_database(name)
    schedule = merged(current.schedule, changes)
    if schedule is None:
        return current.schedule
    return services.catalog.update_database(name, schedule=schedule).schedule


def remove_database(services: Services, name: str) -> None:
    """Stop its schedule and forget its URLs; its backups expire under its last policy."""
    services.catalog.remove_database(name, services.clock())
    services.secrets.delete(name)
    logger.info("database removed", extra={"database": name})


# -- views ----------------------------------------------------------------------


def schedule_view(schedule: Schedule, now: datetime) -> ScheduleView:
    return ScheduleView(**schedule.model_dump(), next_run_at=next_run_at(schedule, now))


def database_view(services: Services, record: DatabaseRecord) -> Database:
    newest, _ = services.catalog.list_backups(record.name, limit=1)
    last_backup = (
        BackupSummary.model_validate(
            newest[0].model_dump(include={"id", "status", "created_at", "size"})
        )
        if newest
        else None
    )
    return Database(
        name=record.name,
        schedule=schedule_view(record.schedule, services.clock()),
        retention=record.retention,
        compression=record.compression,
        has_replica=record.has_replica,
        created_at=record.created_at,
        last_backup=last_backup,
    )
