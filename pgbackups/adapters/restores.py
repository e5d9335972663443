"""Restores run by the stack, in the shared table (`pgbackups.adapters.dynamodb`):

    pk = "DATABASE#<name>"   sk = "RESTORE#<ulid>"       a RestoreRecord
    pk = "RESTORE_TARGETS"   sk = "TARGET#<host:port/db>" the lock: one active restore
                                                          per target, `{restore_id, database}`

A restore and its target's lock are written and released together (transactions),
so a lock never outlives its restore's active life.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pgbackups.adapters.dynamodb import (
    ConditionFailed,
    Table,
    database_item_key,
    decode_cursor,
    encode_cursor,
    fields,
    holding,
    key,
    partition,
    to_item,
    values,
)
from pgbackups.domain.errors import RestoreInProgress, RestoreNotFound
from pgbackups.domain.restores import RestoreRecord, TargetLock

RESTORE_PREFIX = "RESTORE#"
TARGETS_PK = "RESTORE_TARGETS"
TARGET_PREFIX = "TARGET#"


def restore_key(database: str, restore_id: str) -> dict[str, Any]:
    return database_item_key(database, RESTORE_PREFIX + restore_id)


def target_key(target: str) -> dict[str, Any]:
    return key(TARGETS_PK, TARGET_PREFIX + target)


class RestoreCatalog:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._table = Table(dynamodb, table_name)

    def create_restore(self, record: RestoreRecord) -> None:
        """Record a `scheduled` restore and take its target's lock, atomically;
        RestoreInProgress (nothing written) while another restore holds the target."""
        lock = target_key(record.target) | {
            "restore_id": {"S": record.id},
            "database": {"S": record.database},
        }
        try:
            self._table.transact(
                {"Put": {"Item": lock, "ConditionExpression": "attribute_not_exists(pk)"}},
                {
                    "Put": {
                        "Item": to_item(restore_key(record.database, record.id), record),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            )
        except ConditionFailed:
            held = self._table.get(target_key(record.target))
            raise RestoreInProgress(
                record.target, held["restore_id"]["S"] if held else None
            ) from None

    def get_restore(self, database: str, restore_id: str) -> RestoreRecord:
        item = self._table.get(restore_key(database, restore_id))
        if item is None:
            raise RestoreNotFound(f"no restore {restore_id} of {database}")
        return RestoreRecord.model_validate(fields(item))

    def list_restores(
        self, database: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[RestoreRecord], str | None]:
        """A page of restores newest first, and the cursor of the next page (or None)."""
        after = decode_cursor(cursor) if cursor else None
        page: list[RestoreRecord] = []
        for record in self._restores(database, before=after):
            if len(page) == limit:
                return page, encode_cursor(page[-1].id)
            page.append(record)
        return page, None

    def _restores(self, database: str, *, before: str | None = None) -> Iterator[RestoreRecord]:
        """The database's restores, newest first, strictly older than `before`."""
        # "RESTORE$" sorts right after every "RESTORE#…" key.
        upper = RESTORE_PREFIX + before if before else "RESTORE$"
        items = self._table.query(partition(database), "sk < :upper", forward=False, upper=upper)
        for item in items:
            if not item["sk"]["S"].startswith(RESTORE_PREFIX):
                return  # below the restores' keys
            yield RestoreRecord.model_validate(fields(item))

    def target_locks(self) -> list[TargetLock]:
        """Every target's lock: the restores scheduled or running, stack-wide."""
        return [
            TargetLock(
                target=item["sk"]["S"].removeprefix(TARGET_PREFIX),
                database=item["database"]["S"],
                restore_id=item["restore_id"]["S"],
            )
            for item in self._table.query(TARGETS_PK)
        ]

    def start_restore(
        self, database: str, restore_id: str, at: datetime, *, runner: str, deadline_at: datetime
    ) -> RestoreRecord | None:
        """`scheduled` → `running`; None when it is not scheduled any more (a retry)."""
        item = self._table.start_run(
            restore_key(database, restore_id), restore_id, at, runner=runner,
            deadline_at=deadline_at,
        )  # fmt: skip
        return RestoreRecord.model_validate(fields(item)) if item is not None else None

    def record_progress(
        self, database: str, restore_id: str, restored: int, total: int | None
    ) -> None:
        """How far a running restore got (nothing when it is not running any more)."""
        progress: dict[str, Any] = {"restored": restored}
        if total is not None:
            progress["total"] = total
        self._table.update_if(
            restore_key(database, restore_id),
            UpdateExpression="SET progress = :progress",
            ConditionExpression="#status = :running",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values(progress=progress, running="running"),
        )

    def finish_restore(self, record: RestoreRecord, *, expected_status: str) -> bool:
        """Record the finished `record` and free its target, atomically; False (nothing
        written) when it is not in `expected_status` any more (given up meanwhile)."""
        update = holding(record)
        update["ExpressionAttributeValues"] |= values(expected=expected_status)
        try:
            self._table.transact(
                {
                    "Update": {
                        "Key": restore_key(record.database, record.id),
                        "ConditionExpression": "#id = :id AND #status = :expected",
                        **update,
                    }
                },
                {
                    "Delete": {
                        "Key": target_key(record.target),
                        "ConditionExpression": "restore_id = :id",
                        "ExpressionAttributeValues": values(id=record.id),
                    }
                },
            )
        except ConditionFailed:
            return False
        return True
