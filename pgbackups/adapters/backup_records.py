"""The catalog's backups: a database's backup records, the lock a backup takes on its
database's item, their deletion and their Object Lock dates (`adapters.catalog`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pgbackups.adapters.dynamodb import (
    BACKUP_PREFIX,
    DATABASES_PK,
    ConditionFailed,
    Table,
    backup_key,
    database_key,
    decode_cursor,
    encode_cursor,
    fields,
    partition,
    to_item,
    values,
)
from pgbackups.domain.errors import (
    BackupInProgress,
    BackupNotFound,
    Conflict,
    DatabaseNotFound,
    PeriodicBackupExists,
    PgBackupsError,
)
from pgbackups.domain.lock import is_protected, locked_error
from pgbackups.domain.models import (
    BackupRecord,
    DatabaseHistory,
    DatabaseRecord,
    to_rfc3339,
)


def database_of(item: dict[str, Any]) -> DatabaseRecord:
    return DatabaseRecord.model_validate(fields(item))


def backup_of(item: dict[str, Any]) -> BackupRecord:
    return BackupRecord.model_validate(fields(item))


def is_visible_backup(item: dict[str, Any]) -> bool:
    """A visible backup's item: not another kind of item, not one being deleted."""
    return item["sk"]["S"].startswith(BACKUP_PREFIX) and "deleting_at" not in item


class BackupRecords:
    """The backups part of the catalog, on the catalog's table (`self._table`)."""

    _db: Any
    _table: Table

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
        named: dict[str, Any] = {"id": record.id}
        if periodic_day is not None:
            condition += (
                " AND (attribute_not_exists(last_periodic_day) OR last_periodic_day <> :day)"
            )
            update += ", last_periodic_day = :day, last_periodic_id = :id"
            named["day"] = periodic_day
        try:
            self._table.update(
                database_key(record.database),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values(**named),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as refused:
            raise self._refusal(record, periodic_day, refused.item) from None
        try:
            # Unconditional: the id is new, and a retried attempt writes the same item.
            self._table.put(to_item(backup_key(record.database, record.id), record))
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
        database = database_of(item)
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
        item = self._table.get(backup_key(database, backup_id), ProjectionExpression="pk")
        return item is not None

    def get_backup(self, database: str, backup_id: str) -> BackupRecord:
        item = self._table.get(backup_key(database, backup_id))
        if item is None or "deleting_at" in item:
            raise BackupNotFound(f"no backup {backup_id} of {database}")
        return backup_of(item)

    def get_backups(self, keys: list[tuple[str, str]]) -> list[BackupRecord]:
        """The visible backups among (database, backup id) pairs, in a few batched reads."""
        items = self._table.get_many([backup_key(db, backup_id) for db, backup_id in keys])
        return [backup_of(item) for item in items if is_visible_backup(item)]

    def backups_since(self, database: str, oldest_id: str) -> list[BackupRecord]:
        """Visible backups of a database from `oldest_id` on (itself included), newest first."""
        # Backup ids sort after the prefix alone, so nothing but backups matches.
        items = self._table.query(
            partition(database),
            "sk BETWEEN :since AND :last",
            forward=False,
            since=BACKUP_PREFIX + oldest_id,
            last=BACKUP_PREFIX + "~",
        )
        return [backup_of(item) for item in items if is_visible_backup(item)]

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
            item["sk"]["S"].removeprefix(BACKUP_PREFIX)
            for item in self._table.query(partition(database), forward=False)
            if "deleting_at" in item
        ]

    def start_backup(
        self, database: str, backup_id: str, at: datetime, *, runner: str, deadline_at: datetime
    ) -> BackupRecord | None:
        """`scheduled` → `running` on `runner`, which stops it by `deadline_at` for sure;
        None when it is not scheduled any more (a retry)."""
        item = self._table.start_run(
            backup_key(database, backup_id), backup_id, at, runner=runner, deadline_at=deadline_at
        )
        return backup_of(item) if item is not None else None

    def record_upload_progress(self, database: str, backup_id: str, uploaded: int) -> None:
        """Store how many bytes of a running backup's archive S3 has; nothing once it has
        finished (the last parts may report after the record is done or reaped)."""
        self._table.update_if(
            backup_key(database, backup_id),
            UpdateExpression="SET uploaded = :uploaded",
            ConditionExpression="#status = :running",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values(uploaded=uploaded, running="running"),
        )

    def finish_backup(self, record: BackupRecord, *, expected_status: str = "running") -> bool:
        """Store a `done` or `error` record and release the lock, atomically.

        False when the record was not in `expected_status` any more (another
        invocation or the dispatcher's reaper finished it first).
        """
        dumped = record.model_dump(mode="json", exclude={"id", "database"})
        release = "REMOVE active_backup_id"
        if record.method == "periodic" and record.status == "error":
            # A failed periodic backup does not count for its day: a later hour of that
            # day may try again. It held the lock since it took the day, so the day is its.
            release += ", last_periodic_day, last_periodic_id"
        assignments = ", ".join(f"#{field} = :{field}" for field in dumped)
        try:
            self._table.transact(
                {
                    "Update": {
                        "Key": backup_key(record.database, record.id),
                        "UpdateExpression": f"SET {assignments}",
                        "ConditionExpression": "#status = :expected",
                        "ExpressionAttributeNames": {f"#{field}": field for field in dumped},
                        "ExpressionAttributeValues": values(**dumped, expected=expected_status),
                    }
                },
                {
                    "Update": {
                        "Key": database_key(record.database),
                        "UpdateExpression": release,
                        "ConditionExpression": "active_backup_id = :id",
                        "ExpressionAttributeValues": values(id=record.id),
                    }
                },
            )
        except ConditionFailed:
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
            if self._table.update_if(
                database_key(database),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values(id=backup_id),
            ):
                return

    def mark_deleting(self, database: str, backup_id: str, at: datetime) -> BackupRecord:
        """First step of a deletion: hide the record, refuse while it is active (Conflict),
        locked or held (BackupLocked)."""
        try:
            item = self._table.update(
                backup_key(database, backup_id),
                UpdateExpression="SET deleting_at = if_not_exists(deleting_at, :at)",
                ConditionExpression=(
                    "attribute_exists(pk) AND NOT #status IN (:scheduled, :running)"
                    # Object Lock: RFC 3339 UTC strings of one format sort as the dates do.
                    " AND (attribute_not_exists(legal_hold) OR legal_hold = :unheld)"
                    " AND (attribute_not_exists(locked_until) OR locked_until <= :at"
                    " OR attribute_type(locked_until, :null))"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values(
                    at=to_rfc3339(at),
                    scheduled="scheduled",
                    running="running",
                    unheld=False,
                    null="NULL",
                ),
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            record = self.get_backup(database, backup_id)  # raises BackupNotFound
            if is_protected(record, at):
                raise locked_error(record) from None
            raise Conflict(
                f"backup {backup_id} is {record.status}: it can be deleted once it has finished"
            ) from None
        return backup_of(item)

    def delete_backup_record(self, database: str, backup_id: str) -> None:
        self._table.delete(backup_key(database, backup_id))

    def protect_backup(
        self,
        database: str,
        backup_id: str,
        *,
        locked_until: datetime | None = None,
        legal_hold: bool | None = None,
    ) -> BackupRecord:
        """Record a later Object Lock date (never an earlier one) and/or the legal hold
        of a visible backup; BackupNotFound when there is none (or it is being deleted)."""
        assignments: list[str] = []
        named: dict[str, object] = {}
        condition = "attribute_exists(pk) AND attribute_not_exists(deleting_at)"
        if locked_until is not None:
            assignments.append("locked_until = :until")
            named["until"] = to_rfc3339(locked_until)
            # RFC 3339 UTC strings of one format sort as the dates do.
            condition += " AND (attribute_not_exists(locked_until) OR locked_until < :until)"
        if legal_hold is not None:
            assignments.append("legal_hold = :held")
            named["held"] = legal_hold
        try:
            item = self._table.update(
                backup_key(database, backup_id),
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression=condition,
                ExpressionAttributeValues=values(**named),
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return self.get_backup(database, backup_id)  # BackupNotFound, or a later date
        return backup_of(item)

    def database_histories(self) -> list[DatabaseHistory]:
        """Every database, removed ones included, with its backups, in one paged Scan
        (the dispatcher's hourly read) rather than queries per database."""
        databases: dict[str, DatabaseRecord] = {}
        backups: dict[str, list[BackupRecord]] = {}
        deleting: dict[str, list[str]] = {}
        # Continuous backups' items share the partitions: not read into records.
        for item in self._table.scan(
            "pk = :databases OR begins_with(sk, :backup)",
            databases=DATABASES_PK,
            backup=BACKUP_PREFIX,
        ):
            if item["pk"]["S"] == DATABASES_PK:
                record = database_of(item)
                databases[record.name] = record
                continue
            name = item["pk"]["S"].removeprefix(partition(""))
            if "deleting_at" in item:
                deleting.setdefault(name, []).append(item["sk"]["S"].removeprefix(BACKUP_PREFIX))
            else:
                backups.setdefault(name, []).append(backup_of(item))
        return [
            DatabaseHistory(
                database=record,
                backups=sorted(backups.get(name, []), key=lambda b: b.id, reverse=True),
                pending_deletions=deleting.get(name, []),
            )
            for name, record in sorted(databases.items())
        ]

    def _backups(self, database: str, *, before: str | None = None) -> Iterator[BackupRecord]:
        """Visible backups of a database, newest first, strictly older than `before`."""
        if before is None:
            items = self._table.query(partition(database), forward=False)
        else:
            items = self._table.query(
                partition(database), "sk < :before", forward=False, before=BACKUP_PREFIX + before
            )
        for item in items:
            if is_visible_backup(item):
                yield backup_of(item)
