"""The catalog: databases and backups in one DynamoDB table.

Item layout (key schema `pk`/`sk`, declared once in template.yaml):

    pk = "DATABASES"          sk = "DATABASE#<name>"   a DatabaseRecord
    pk = "DATABASE#<name>"    sk = "BACKUP#<ulid>"     a BackupRecord

ULIDs sort by creation time, so a query on a database's partition with
ScanIndexForward=False lists its backups newest first. The database item holds
the lock: `active_backup_id` is set in the same transaction that creates a
backup, only when it is absent, and removed in the one that finishes it, so a
database never has two scheduled or running backups.

Domain code sees records and domain errors, never a raw boto3 response.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from pgbackups.domain.errors import (
    BackupInProgress,
    BackupNotFound,
    Conflict,
    DatabaseExists,
    DatabaseNotFound,
    InvalidInput,
    PeriodicBackupExists,
    PgBackupsError,
)
from pgbackups.domain.models import (
    BACKUP_ID,
    SECRET_DELETION_LEASE,
    Alerting,
    BackupRecord,
    DatabaseHistory,
    DatabaseRecord,
    Health,
    RetentionPolicy,
    Schedule,
    to_rfc3339,
)

DATABASES_PK = "DATABASES"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _database_key(name: str) -> dict[str, Any]:
    return {"pk": {"S": DATABASES_PK}, "sk": {"S": f"DATABASE#{name}"}}


def _backup_key(database: str, backup_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"DATABASE#{database}"}, "sk": {"S": f"BACKUP#{backup_id}"}}


def _to_item(key: dict[str, Any], record: DatabaseRecord | BackupRecord) -> dict[str, Any]:
    fields = record.model_dump(mode="json", exclude_none=True)
    return key | {name: _serializer.serialize(value) for name, value in fields.items()}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _deserializer.deserialize(value)
        for name, value in item.items()
        if name not in ("pk", "sk")
    }


def _values(**values: Any) -> dict[str, Any]:
    return {f":{name}": _serializer.serialize(value) for name, value in values.items()}


def _cancellation_codes(error: ClientError) -> list[str]:
    reasons = error.response.get("CancellationReasons", [])
    return [reason.get("Code", "None") for reason in reasons]


class TransactionRefused(Exception):
    """A condition of the transaction failed (as opposed to a transient conflict)."""


# Two writers touching the database item at once (the API creating a backup
# while another finishes) cancel each other with TransactionConflict: try again.
_TRANSIENT = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
_TRANSACTION_ATTEMPTS = 6
_BATCH_GET_LIMIT = 100  # keys per BatchGetItem


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def encode_cursor(backup_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": backup_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        backup_id = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidInput("invalid cursor", field="cursor") from None
    if not isinstance(backup_id, str) or not BACKUP_ID.match(backup_id):
        raise InvalidInput("invalid cursor", field="cursor")
    return backup_id


def transact(dynamodb: Any, items: list[dict[str, Any]]) -> None:
    """TransactWriteItems, retried on transient conflicts; TransactionRefused when a
    condition fails."""
    for attempt in range(_TRANSACTION_ATTEMPTS):
        try:
            dynamodb.transact_write_items(TransactItems=items)
            return
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            codes = set(_cancellation_codes(error))
            if not codes & _TRANSIENT or attempt == _TRANSACTION_ATTEMPTS - 1:
                raise TransactionRefused(str(sorted(codes))) from None
        time.sleep(random.uniform(0.05, 0.2) * 2**attempt)  # noqa: S311 (jitter)


class Catalog:
    """Databases and backups, on a DynamoDB client and table name."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def _transact(self, items: list[dict[str, Any]]) -> None:
        transact(self._db, items)

    # -- databases ---------------------------------------------------------

    def create_database(self, record: DatabaseRecord) -> None:
        """Store a new database; a removed one of that name may be registered again."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item=_to_item(_database_key(record.name), record),
                # Not while a removal deletes the former URLs (unless that stopped long ago).
                ConditionExpression="attribute_not_exists(pk) OR "
                "(attribute_exists(removed_at) AND attribute_not_exists(active_backup_id) AND "
                "(attribute_not_exists(secret_deletion) OR secret_deletion < :stale))",
                ExpressionAttributeValues=_values(
                    stale=to_rfc3339(record.created_at - SECRET_DELETION_LEASE)
                ),
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise DatabaseExists(f"database {record.name} already exists") from None
            raise

    def get_database(self, name: str, *, include_removed: bool = False) -> DatabaseRecord:
        item = self._db.get_item(
            TableName=self._table, Key=_database_key(name), ConsistentRead=True
        ).get("Item")
        if item is None:
            raise DatabaseNotFound(f"no database named {name}")
        record = DatabaseRecord.model_validate(_from_item(item))
        if record.removed_at is not None and not include_removed:
            raise DatabaseNotFound(f"no database named {name}")
        return record

    def list_databases(self, *, include_removed: bool = False) -> list[DatabaseRecord]:
        records = [
            DatabaseRecord.model_validate(_from_item(item))
            for item in self._query(DATABASES_PK, forward=True)
        ]
        return [r for r in records if include_removed or r.removed_at is None]

    def update_database(
        self,
        name: str,
        *,
        schedule: Schedule | None = None,
        retention: RetentionPolicy | None = None,
        compression: str | None = None,
        has_replica: bool | None = None,
        runner: str | None = None,
        alerting: Alerting | None = None,
    ) -> DatabaseRecord:
        changes: dict[str, Any] = {}
        if schedule is not None:
            changes["schedule"] = schedule.model_dump(mode="json")
        if retention is not None:
            changes["retention"] = retention.model_dump(mode="json")
        if compression is not None:
            changes["compression"] = compression
        if has_replica is not None:
            changes["has_replica"] = has_replica
        if runner is not None:
            changes["runner"] = runner
        if alerting is not None:
            changes["alerting"] = alerting.model_dump(mode="json")
        if not changes:
            return self.get_database(name)
        assignments = ", ".join(f"#{field} = :{field}" for field in changes)
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key=_database_key(name),
                UpdateExpression=f"SET {assignments}",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(removed_at)",
                ExpressionAttributeNames={f"#{field}": field for field in changes},
                ExpressionAttributeValues=_values(**changes),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if _is_conditional_failure(error):
                raise DatabaseNotFound(f"no database named {name}") from None
            raise
        return DatabaseRecord.model_validate(_from_item(item))

    def record_health(self, name: str, new: Health, previous: Health | None) -> bool:
        """Store a database's health if it is still `previous` (None: never recorded);
        False when another writer changed it first, or the database is gone."""
        condition = "attribute_exists(pk) AND attribute_not_exists(removed_at) AND "
        values = _values(new=new.model_dump(mode="json", exclude_none=True))
        if previous is None:
            condition += "attribute_not_exists(health)"
        else:
            condition += "health = :previous"
            values |= _values(previous=previous.model_dump(mode="json", exclude_none=True))
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_database_key(name),
                UpdateExpression="SET health = :new",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def remove_database(self, name: str, at: datetime) -> None:
        """Mark removed: its schedule stops, its backups expire under its last policy.

        It also claims the deletion of its URLs (`secret_deletion`): until
        `secret_deleted`, nobody registers the name again, so that deletion can never
        remove a new registration's URLs."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_database_key(name),
                UpdateExpression="SET removed_at = :at, secret_deletion = :at, "
                "#schedule.enabled = :off",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(removed_at)",
                ExpressionAttributeNames={"#schedule": "schedule"},
                ExpressionAttributeValues=_values(at=to_rfc3339(at), off=False),
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise DatabaseNotFound(f"no database named {name}") from None
            raise

    def forget_database(self, name: str) -> None:
        """Delete a removed database's item once none of its backups is left."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=_database_key(name),
                ConditionExpression="attribute_exists(removed_at) AND "
                "attribute_not_exists(active_backup_id) AND attribute_not_exists(secret_deletion)",
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise

    def claim_secret_deletion(self, record: DatabaseRecord, at: datetime) -> bool:
        """Claim the deletion of a removed database's URLs; False when the name is not
        that removed database any more (registered again, or forgotten)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_database_key(record.name),
                UpdateExpression="SET secret_deletion = :at",
                ConditionExpression="attribute_exists(removed_at) AND created_at = :created",
                ExpressionAttributeValues=_values(
                    at=to_rfc3339(at), created=record.model_dump(mode="json")["created_at"]
                ),
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def secret_deleted(self, name: str, claimed_at: datetime) -> None:
        """Release the claim taken at `claimed_at`: the URLs are gone."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_database_key(name),
                UpdateExpression="REMOVE secret_deletion",
                ConditionExpression="secret_deletion = :at",
                ExpressionAttributeValues=_values(at=to_rfc3339(claimed_at)),
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise

    # -- backups -----------------------------------------------------------

    def create_backup(self, record: BackupRecord, *, periodic_day: str | None = None) -> None:
        """Store a `scheduled` backup holding the database's lock.

        With `periodic_day` (the local date of a periodic backup) it also fails
        when that day already has its periodic backup, so two dispatcher runs in
        the same hour create one backup.

        Two single-item writes, in this order: the lock (and the day) on the
        database item, conditionally, then the record. A transaction would make them
        one at twice the write cost (and moto copies the whole table for each one).
        In between, the lock names a record not written yet: `release_lock` is how a
        lock whose record never came is given up (the dispatcher waits for it to be
        older than a grace first), so a writer stopped between the two loses neither
        the database nor the day.
        """
        condition = (
            "attribute_exists(pk) AND attribute_not_exists(removed_at) "
            "AND attribute_not_exists(active_backup_id)"
        )
        update = "SET active_backup_id = :id, last_backup_id = :id"
        values: dict[str, Any] = {"id": record.id}
        if periodic_day is not None:
            condition += (
                " AND (attribute_not_exists(last_periodic_day) OR last_periodic_day <> :day)"
            )
            update += ", last_periodic_day = :day, last_periodic_id = :id"
            values["day"] = periodic_day
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_database_key(record.database),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=_values(**values),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise
            raise self._refusal(record, periodic_day, error.response.get("Item")) from None
        try:
            # Unconditional: the id is new, and a retried attempt writes the same item.
            self._db.put_item(
                TableName=self._table,
                Item=_to_item(_backup_key(record.database, record.id), record),
            )
        except Exception:
            if self._backup_exists(record.database, record.id):
                return  # written by an attempt whose answer was lost
            # Nothing will ever finish this backup: give its lock and day back now.
            self.release_lock(record.database, record.id)
            raise

    @staticmethod
    def _refusal(
        record: BackupRecord, periodic_day: str | None, item: dict[str, Any] | None
    ) -> PgBackupsError:
        """Why the lock was refused, from the database item as the refusal saw it."""
        if item is None:
            return DatabaseNotFound(f"no database named {record.database}")
        database = DatabaseRecord.model_validate(_from_item(item))
        if database.removed_at is not None:
            return DatabaseNotFound(f"no database named {record.database}")
        if periodic_day is not None and database.last_periodic_day == periodic_day:
            return PeriodicBackupExists(
                f"{database.name} already has its periodic backup of {periodic_day}"
            )
        if database.active_backup_id:
            return BackupInProgress(database.name, database.active_backup_id)
        return Conflict(f"backup {record.id} of {record.database} could not be created")

    def _backup_exists(self, database: str, backup_id: str) -> bool:
        item = self._db.get_item(
            TableName=self._table,
            Key=_backup_key(database, backup_id),
            ConsistentRead=True,
            ProjectionExpression="pk",
        ).get("Item")
        return item is not None

    def get_backup(self, database: str, backup_id: str) -> BackupRecord:
        item = self._db.get_item(
            TableName=self._table, Key=_backup_key(database, backup_id), ConsistentRead=True
        ).get("Item")
        if item is None or "deleting_at" in item:
            raise BackupNotFound(f"no backup {backup_id} of {database}")
        return BackupRecord.model_validate(_from_item(item))

    def get_backups(self, keys: list[tuple[str, str]]) -> list[BackupRecord]:
        """The visible backups among (database, backup id) pairs, in a few batched reads."""
        found: list[BackupRecord] = []
        for start in range(0, len(keys), _BATCH_GET_LIMIT):
            request = {
                self._table: {
                    "Keys": [
                        _backup_key(db, backup_id)
                        for db, backup_id in keys[start : start + _BATCH_GET_LIMIT]
                    ],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                found += [
                    BackupRecord.model_validate(_from_item(item))
                    for item in response.get("Responses", {}).get(self._table, [])
                    if "deleting_at" not in item
                ]
                request = response.get("UnprocessedKeys") or {}
        return found

    def backups_since(self, database: str, oldest_id: str) -> list[BackupRecord]:
        """Visible backups of a database from `oldest_id` on (itself included), newest first."""
        return [
            BackupRecord.model_validate(_from_item(item))
            for item in self._query(f"DATABASE#{database}", forward=False, since=oldest_id)
            if "deleting_at" not in item
        ]

    def latest_done_backup(self, database: str) -> BackupRecord:
        for record in self._backups(database):
            if record.status == "done":
                return record
        raise BackupNotFound(f"{database} has no successful backup yet")

    def list_backups(
        self,
        database: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        status: str | None = None,
        method: str | None = None,
    ) -> tuple[list[BackupRecord], str | None]:
        """A page of backups newest first, and the cursor of the next page (or None)."""
        after = decode_cursor(cursor) if cursor else None
        page: list[BackupRecord] = []
        for record in self._backups(database, before=after):
            if (status and record.status != status) or (method and record.method != method):
                continue
            if len(page) == limit:
                return page, encode_cursor(page[-1].id)
            page.append(record)
        return page, None

    def all_backups(self, database: str) -> list[BackupRecord]:
        return list(self._backups(database))

    def pending_deletions(self, database: str) -> list[str]:
        """Ids of backups whose deletion started and did not finish."""
        return [
            item["sk"]["S"].removeprefix("BACKUP#")
            for item in self._query(f"DATABASE#{database}", forward=False)
            if "deleting_at" in item
        ]

    def start_backup(
        self, database: str, backup_id: str, at: datetime, *, runner: str, deadline_at: datetime
    ) -> BackupRecord | None:
        """`scheduled` → `running` on `runner`, which stops it by `deadline_at` for sure;
        None when it is not scheduled any more (a retry)."""
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key=_backup_key(database, backup_id),
                UpdateExpression=(
                    "SET #status = :running, started_at = :at, runner = :runner, "
                    "deadline_at = :deadline"
                ),
                ConditionExpression="#status = :scheduled AND attribute_not_exists(deleting_at)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_values(
                    running="running",
                    scheduled="scheduled",
                    at=to_rfc3339(at),
                    runner=runner,
                    deadline=to_rfc3339(deadline_at),
                ),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if _is_conditional_failure(error):
                return None
            raise
        return BackupRecord.model_validate(_from_item(item))

    def record_upload_progress(self, database: str, backup_id: str, uploaded: int) -> None:
        """Store how many bytes of a running backup's archive S3 has; nothing once it has
        finished (the last parts may report after the record is done or reaped)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_backup_key(database, backup_id),
                UpdateExpression="SET uploaded = :uploaded",
                ConditionExpression="#status = :running",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_values(uploaded=uploaded, running="running"),
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise

    def finish_backup(self, record: BackupRecord, *, expected_status: str = "running") -> bool:
        """Store a `done` or `error` record and release the lock, atomically.

        False when the record was not in `expected_status` any more (another
        invocation or the dispatcher's reaper finished it first).
        """
        fields = record.model_dump(mode="json", exclude={"id", "database"})
        names = {f"#{field}": field for field in fields}
        release = "REMOVE active_backup_id"
        if record.method == "periodic" and record.status == "error":
            # A failed periodic backup does not count for its day: a later hour of that
            # day may try again. It held the lock since it took the day, so the day is its.
            release += ", last_periodic_day, last_periodic_id"
        assignments = ", ".join(f"#{field} = :{field}" for field in fields)
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": _backup_key(record.database, record.id),
                            "UpdateExpression": f"SET {assignments}",
                            "ConditionExpression": "#status = :expected",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": _values(
                                **fields, expected=expected_status
                            ),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": _database_key(record.database),
                            "UpdateExpression": release,
                            "ConditionExpression": "active_backup_id = :id",
                            "ExpressionAttributeValues": _values(id=record.id),
                        }
                    },
                ]
            )
        except TransactionRefused:
            return False
        return True

    def release_lock(self, database: str, backup_id: str) -> None:
        """Drop a lock whose backup record is missing (never written, or gone): nothing
        can finish that backup. A periodic one also gives its day back, as a failed
        periodic backup does, so a later hour of that day may take it."""
        releases = (
            (  # a periodic backup's lock, with its day
                "REMOVE active_backup_id, last_periodic_day, last_periodic_id",
                "active_backup_id = :id AND last_periodic_id = :id",
            ),
            ("REMOVE active_backup_id", "active_backup_id = :id"),  # any other
        )
        for update, condition in releases:
            try:
                self._db.update_item(
                    TableName=self._table,
                    Key=_database_key(database),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=_values(id=backup_id),
                )
                return
            except ClientError as error:
                if not _is_conditional_failure(error):
                    raise

    def mark_deleting(self, database: str, backup_id: str, at: datetime) -> BackupRecord:
        """First step of a deletion: hide the record, refuse while it is active."""
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key=_backup_key(database, backup_id),
                UpdateExpression="SET deleting_at = if_not_exists(deleting_at, :at)",
                ConditionExpression="attribute_exists(pk) AND NOT #status IN (:scheduled, :running)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_values(
                    at=to_rfc3339(at), scheduled="scheduled", running="running"
                ),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise
            record = self.get_backup(database, backup_id)  # raises BackupNotFound
            raise Conflict(
                f"backup {backup_id} is {record.status}: it can be deleted once it has finished"
            ) from None
        return BackupRecord.model_validate(_from_item(item))

    def delete_backup_record(self, database: str, backup_id: str) -> None:
        self._db.delete_item(TableName=self._table, Key=_backup_key(database, backup_id))

    def database_histories(self) -> list[DatabaseHistory]:
        """Every database, removed ones included, with its backups, in one paged Scan
        (the dispatcher's hourly read) rather than queries per database.

        Items are read one page after another, not at one instant: a reader acts on
        what it saw only through conditional writes, or reads the item again."""
        databases: dict[str, DatabaseRecord] = {}
        backups: dict[str, list[BackupRecord]] = {}
        deleting: dict[str, list[str]] = {}
        request: dict[str, Any] = {
            "TableName": self._table,
            # Continuous backups' items share the partitions: not read into records.
            "FilterExpression": "pk = :databases OR begins_with(sk, :backup)",
            "ExpressionAttributeValues": _values(databases=DATABASES_PK, backup="BACKUP#"),
            "ConsistentRead": True,
        }
        while True:
            response = self._db.scan(**request)
            for item in response.get("Items", []):
                if item["pk"]["S"] == DATABASES_PK:
                    record = DatabaseRecord.model_validate(_from_item(item))
                    databases[record.name] = record
                    continue
                name = item["pk"]["S"].removeprefix("DATABASE#")
                if "deleting_at" in item:
                    deleting.setdefault(name, []).append(item["sk"]["S"].removeprefix("BACKUP#"))
                else:
                    backups.setdefault(name, []).append(
                        BackupRecord.model_validate(_from_item(item))
                    )
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return [
            DatabaseHistory(
                database=record,
                backups=sorted(backups.get(name, []), key=lambda b: b.id, reverse=True),
                pending_deletions=deleting.get(name, []),
            )
            for name, record in sorted(databases.items())
        ]

    # -- queries -----------------------------------------------------------

    def _backups(self, database: str, *, before: str | None = None) -> Iterator[BackupRecord]:
        """Visible backups of a database, newest first, strictly older than `before`."""
        for item in self._query(f"DATABASE#{database}", forward=False, before=before):
            if item["sk"]["S"].startswith("BACKUP#") and "deleting_at" not in item:
                yield BackupRecord.model_validate(_from_item(item))

    def _query(
        self, pk: str, *, forward: bool, before: str | None = None, since: str | None = None
    ) -> Iterator[dict[str, Any]]:
        condition = "pk = :pk"
        values: dict[str, Any] = {"pk": pk}
        if before is not None:
            condition += " AND sk < :before"
            values["before"] = f"BACKUP#{before}"
        elif since is not None:
            # Backup ids sort after the prefix alone, so nothing but backups matches.
            condition += " AND sk BETWEEN :since AND :last"
            values["since"] = f"BACKUP#{since}"
            values["last"] = "BACKUP#~"
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": _values(**values),
            "ScanIndexForward": forward,
            "ConsistentRead": True,
        }
        while True:
            response = self._db.query(**request)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
