"""The catalog: databases and backups, items of the one table (`adapters.dynamodb`).

    pk = "DATABASES"          sk = "DATABASE#<name>"   a DatabaseRecord
    pk = "DATABASE#<name>"    sk = "BACKUP#<ulid>"     a BackupRecord

ULIDs sort by creation time, so a query on a database's partition with
ScanIndexForward=False lists its backups newest first. The database item holds
the lock: `active_backup_id` is set when a backup is created, only when it is
absent, and removed in the transaction that finishes it, so a database never has
two scheduled or running backups.

The backups' half of the class (records, the lock, deletions, lock dates) lives in
`adapters.backup_records`. Domain code sees records and domain errors, never a raw
boto3 response.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pgbackups.adapters.backup_records import BackupRecords, database_of
from pgbackups.adapters.dynamodb import (
    DATABASES_PK,
    ConditionFailed,
    Table,
    database_key,
    to_item,
    values,
)
from pgbackups.domain.errors import (
    DatabaseExists,
    DatabaseNotFound,
)
from pgbackups.domain.models import (
    SECRET_DELETION_LEASE,
    Alerting,
    DatabaseRecord,
    Health,
    to_rfc3339,
)
from pgbackups.domain.verifications import VerificationSettings


class Catalog(BackupRecords):
    """Databases and backups, on a DynamoDB client and table name."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = Table(dynamodb, table_name)

    # -- databases ---------------------------------------------------------

    def create_database(self, record: DatabaseRecord) -> None:
        """Store a new database; a removed one of that name may be registered again."""
        try:
            self._table.put(
                to_item(database_key(record.name), record),
                # Not while a removal deletes the former URLs (unless that stopped long ago).
                ConditionExpression="attribute_not_exists(pk) OR "
                "(attribute_exists(removed_at) AND attribute_not_exists(active_backup_id) AND "
                "(attribute_not_exists(secret_deletion) OR secret_deletion < :stale))",
                ExpressionAttributeValues=values(
                    stale=to_rfc3339(record.created_at - SECRET_DELETION_LEASE)
                ),
            )
        except ConditionFailed:
            raise DatabaseExists(f"database {record.name} already exists") from None

    def get_database(self, name: str, *, include_removed: bool = False) -> DatabaseRecord:
        item = self._table.get(database_key(name))
        record = database_of(item) if item is not None else None
        if record is None or (record.removed_at is not None and not include_removed):
            raise DatabaseNotFound(f"no database named {name}")
        return record

    def list_databases(self, *, include_removed: bool = False) -> list[DatabaseRecord]:
        records = [database_of(item) for item in self._table.query(DATABASES_PK)]
        return [r for r in records if include_removed or r.removed_at is None]

    def update_database(
        self,
        name: str,
        *,
        schedule: Mapping[str, Any] | None = None,
        retention: Mapping[str, Any] | None = None,
        compression: str | None = None,
        runner: str | None = None,
        alerting: Alerting | None = None,
        verification: VerificationSettings | None = None,
    ) -> DatabaseRecord:
        """Set the given settings, and in `schedule` and `retention` only the given
        fields: each attribute is written on its own, so concurrent changes of
        different settings (or fields) all land."""
        changes: dict[tuple[str, ...], Any] = {}  # attribute path → value
        for group, group_changes in (("schedule", schedule), ("retention", retention)):
            changes |= {(group, field): value for field, value in (group_changes or {}).items()}
        if compression is not None:
            changes[("compression",)] = compression
        if runner is not None:
            changes[("runner",)] = runner
        if alerting is not None:  # whole: a database registered before it has none
            changes[("alerting",)] = alerting.model_dump(mode="json")
        if verification is not None:  # whole, like alerting
            changes[("verification",)] = verification.model_dump(mode="json", exclude_none=True)
        if not changes:
            return self.get_database(name)
        try:
            item = self._table.update(
                database_key(name),
                UpdateExpression="SET "
                + ", ".join(f"#{'.#'.join(path)} = :{'_'.join(path)}" for path in changes),
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(removed_at)",
                ExpressionAttributeNames={f"#{part}": part for path in changes for part in path},
                ExpressionAttributeValues=values(
                    **{"_".join(path): value for path, value in changes.items()}
                ),
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            raise DatabaseNotFound(f"no database named {name}") from None
        return database_of(item)

    def record_replica(self, name: str, has_replica: bool, urls_version: int) -> None:
        """Whether the database has a replica, as version `urls_version` of its URLs says;
        nothing when a later version is recorded already (changes finishing out of order)."""
        self._table.update_if(
            database_key(name),
            UpdateExpression="SET has_replica = :has_replica, urls_version = :version",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(removed_at) AND "
            "(attribute_not_exists(urls_version) OR urls_version < :version)",
            ExpressionAttributeValues=values(has_replica=has_replica, version=urls_version),
        )

    def record_health(self, name: str, new: Health, previous: Health | None) -> bool:
        """Store a database's health if it is still `previous` (None: never recorded);
        False when another writer changed it first, or the database is gone."""
        condition = "attribute_exists(pk) AND attribute_not_exists(removed_at) AND "
        health = values(new=new.model_dump(mode="json", exclude_none=True))
        if previous is None:
            condition += "attribute_not_exists(health)"
        else:
            condition += "health = :previous"
            health |= values(previous=previous.model_dump(mode="json", exclude_none=True))
        return self._table.update_if(
            database_key(name),
            UpdateExpression="SET health = :new",
            ConditionExpression=condition,
            ExpressionAttributeValues=health,
        )

    def remove_database(self, name: str, at: datetime) -> None:
        """Mark removed: its schedule stops, its backups expire under its last policy.

        It also claims the deletion of its URLs (`secret_deletion`): until
        `secret_deleted`, nobody registers the name again, so that deletion can never
        remove a new registration's URLs."""
        try:
            self._table.update(
                database_key(name),
                UpdateExpression="SET removed_at = :at, secret_deletion = :at, "
                "#schedule.enabled = :off",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(removed_at)",
                ExpressionAttributeNames={"#schedule": "schedule"},
                ExpressionAttributeValues=values(at=to_rfc3339(at), off=False),
            )
        except ConditionFailed:
            raise DatabaseNotFound(f"no database named {name}") from None

    def forget_database(self, name: str) -> None:
        """Delete a removed database's item once none of its backups is left."""
        # Not when registered again, or while busy.
        with contextlib.suppress(ConditionFailed):
            self._table.delete(
                database_key(name),
                ConditionExpression="attribute_exists(removed_at) AND "
                "attribute_not_exists(active_backup_id) AND attribute_not_exists(secret_deletion)",
            )

    def claim_secret_deletion(self, record: DatabaseRecord, at: datetime) -> bool:
        """Claim the deletion of a removed database's URLs; False when the name is not
        that removed database any more (registered again, or forgotten)."""
        return self._table.update_if(
            database_key(record.name),
            UpdateExpression="SET secret_deletion = :at",
            ConditionExpression="attribute_exists(removed_at) AND created_at = :created",
            ExpressionAttributeValues=values(
                at=to_rfc3339(at), created=record.model_dump(mode="json")["created_at"]
            ),
        )

    def secret_deleted(self, name: str, claimed_at: datetime) -> None:
        """Release the claim taken at `claimed_at`: the URLs are gone."""
        self._table.update_if(  # not another claim's: that one releases itself
            database_key(name),
            UpdateExpression="REMOVE secret_deletion",
            ConditionExpression="secret_deletion = :at",
            ExpressionAttributeValues=values(at=to_rfc3339(claimed_at)),
        )
