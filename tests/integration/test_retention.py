"""Deletions on moto: object and record go together, even when interrupted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgbackups.domain.errors import BackupNotFound, Conflict, DatabaseNotFound
from pgbackups.domain.models import BackupRecord, DatabaseRecord, RetentionPolicy
from pgbackups.services import Services
from pgbackups.usecases.retention import apply_retention, delete_backup
from tests.conftest import AwsStack

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def register(services: Services, retention: RetentionPolicy | None = None) -> DatabaseRecord:
    record = DatabaseRecord(name="shop", retention=retention or RetentionPolicy(), created_at=NOW)
    services.catalog.create_database(record)
    return record


def finished_backup(
    services: Services, created_at: datetime, method: str = "manual", status: str = "done"
) -> BackupRecord:
    """A backup taken through the catalog's real transitions, with its object in S3."""
    record = BackupRecord.new("shop", method, created_at)  # type: ignore[arg-type]
    services.catalog.create_backup(record)
    running = services.catalog.start_backup(
        "shop", record.id, created_at, runner="lambda", deadline_at=created_at
    )
    assert running is not None
    if status == "done":
        services.archives._s3.put_object(
            Bucket=services.archives.bucket, Key=record.object_key, Body=b"PGDMP archive"
        )
    finished = running.model_copy(
        update={"status": status, "finished_at": created_at + timedelta(minutes=1), "size": 13}
    )
    assert services.catalog.finish_backup(finished)
    return finished


def test_the_manual_cap_deletes_the_oldest_object_and_record(
    aws: AwsStack, services: Services
) -> None:
    database = register(services, RetentionPolicy(manual=2))
    backups = [finished_backup(services, NOW - timedelta(hours=h)) for h in (3, 2, 1)]

    deleted = apply_retention(services, database, NOW)

    assert [r.id for r in deleted] == [backups[0].id]
    assert {r.id for r in services.catalog.all_backups("shop")} == {b.id for b in backups[1:]}
    assert aws.object_keys() == sorted(b.object_key for b in backups[1:])


def test_an_interrupted_deletion_is_hidden_then_finished(aws: AwsStack, services: Services) -> None:
    database = register(services)
    backup = finished_backup(services, NOW - timedelta(hours=1))
    real_delete = services.archives.delete

    def s3_down(key: str) -> None:
        raise ConnectionError("S3 unreachable")

    services.archives.delete = s3_down  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        delete_backup(services, "shop", backup.id)

    # Half done: the record is hidden (no one downloads a backup being deleted) and
    # still known, so its object is not orphaned.
    with pytest.raises(BackupNotFound):
        services.catalog.get_backup("shop", backup.id)
    assert services.catalog.pending_deletions("shop") == [backup.id]
    assert aws.object_keys() == [backup.object_key]

    services.archives.delete = real_delete  # type: ignore[method-assign]
    apply_retention(services, database, NOW)

    assert services.catalog.pending_deletions("shop") == []
    assert aws.object_keys() == []


def test_an_active_backup_cannot_be_deleted(services: Services) -> None:
    register(services)
    record = BackupRecord.new("shop", "manual", NOW)
    services.catalog.create_backup(record)

    with pytest.raises(Conflict, match="scheduled"):
        delete_backup(services, "shop", record.id)
    assert services.catalog.get_backup("shop", record.id).status == "scheduled"


def test_a_removed_database_expires_then_is_forgotten(services: Services) -> None:
    database = register(services)
    old_error = finished_backup(services, NOW - timedelta(days=40), status="error")
    services.catalog.remove_database("shop", NOW - timedelta(days=35))
    services.catalog.secret_deleted("shop", NOW - timedelta(days=35))  # as removal does
    removed = services.catalog.get_database("shop", include_removed=True)
    assert removed.schedule.enabled is False

    deleted = apply_retention(services, removed, NOW)

    assert [r.id for r in deleted] == [old_error.id]
    with pytest.raises(DatabaseNotFound):
        services.catalog.get_database("shop", include_removed=True)
    assert database.name not in [
        d.name for d in services.catalog.list_databases(include_removed=True)
    ]


def test_a_backup_deleted_while_retention_applies_counts_as_deleted(
    aws: AwsStack, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = register(services, RetentionPolicy(manual=1))
    backups = [finished_backup(services, NOW - timedelta(hours=h)) for h in (3, 2, 1)]
    snapshot = services.catalog.all_backups

    def snapshot_then_a_users_delete(name: str) -> list[BackupRecord]:
        seen = snapshot(name)
        delete_backup(services, "shop", backups[0].id)  # between the snapshot and the deletions
        return seen

    monkeypatch.setattr(services.catalog, "all_backups", snapshot_then_a_users_delete)

    deleted = apply_retention(services, database, NOW)

    assert {r.id for r in deleted} == {backups[0].id, backups[1].id}
    monkeypatch.undo()
    assert [r.id for r in services.catalog.all_backups("shop")] == [backups[2].id]
    assert aws.object_keys() == [backups[2].object_key]
