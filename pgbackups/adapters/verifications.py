"""Restore drills, in the shared table (`pgbackups.adapters.dynamodb`):

    pk = "DATABASE#<name>"   sk = "VERIFICATION#<ulid>"   a VerificationRecord

The database's own item holds the lock (`active_verification_id`: one drill at a time)
and the last drill's summary (`verification_state`); both change in the same
transaction as the drill's record, so the lock never outlives its drill's active life.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from pgbackups.adapters.dynamodb import (
    ConditionFailed,
    Table,
    backup_key,
    database_item_key,
    database_key,
    decode_cursor,
    encode_cursor,
    fields,
    holding,
    partition,
    to_item,
    values,
)
from pgbackups.domain.errors import (
    DatabaseNotFound,
    VerificationInProgress,
    VerificationNotFound,
)
from pgbackups.domain.models import to_rfc3339
from pgbackups.domain.verifications import (
    VerificationRecord,
    VerificationResult,
    VerificationState,
)

VERIFICATION_PREFIX = "VERIFICATION#"


def verification_key(database: str, verification_id: str) -> dict[str, Any]:
    return database_item_key(database, VERIFICATION_PREFIX + verification_id)


def _map(state: VerificationState) -> dict[str, Any]:
    """The summary as a DynamoDB map (its floats as the Decimals DynamoDB takes)."""
    mapped: dict[str, Any] = json.loads(
        state.model_dump_json(exclude_none=True), parse_float=Decimal
    )
    return mapped


class VerificationCatalog:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._table = Table(dynamodb, table_name)

    def create_verification(self, record: VerificationRecord, state: VerificationState) -> None:
        """Record a `scheduled` drill and take the database's drill lock, atomically;
        VerificationInProgress (nothing written) while another drill holds it."""
        try:
            self._table.transact(
                {
                    "Update": {
                        "Key": database_key(record.database),
                        "UpdateExpression": "SET active_verification_id = :id, "
                        "verification_state = :state",
                        "ConditionExpression": "attribute_exists(pk) AND "
                        "attribute_not_exists(removed_at) AND "
                        "attribute_not_exists(active_verification_id)",
                        "ExpressionAttributeValues": values(id=record.id, state=_map(state)),
                    }
                },
                {
                    "Put": {
                        "Item": to_item(verification_key(record.database, record.id), record),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            )
        except ConditionFailed:
            held = self._table.get(database_key(record.database))
            if held is None or "removed_at" in held:
                raise DatabaseNotFound(f"no database named {record.database}") from None
            active = held.get("active_verification_id", {}).get("S")
            raise VerificationInProgress(record.database, active) from None

    def get_verification(self, database: str, verification_id: str) -> VerificationRecord:
        item = self._table.get(verification_key(database, verification_id))
        if item is None:
            raise VerificationNotFound(f"no verification {verification_id} of {database}")
        return VerificationRecord.model_validate(fields(item))

    def list_verifications(
        self, database: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[VerificationRecord], str | None]:
        """A page of drills newest first, and the cursor of the next page (or None)."""
        after = decode_cursor(cursor) if cursor else None
        page: list[VerificationRecord] = []
        for record in self._verifications(database, before=after):
            if len(page) == limit:
                return page, encode_cursor(page[-1].id)
            page.append(record)
        return page, None

    def _verifications(
        self, database: str, *, before: str | None = None
    ) -> Iterator[VerificationRecord]:
        # "VERIFICATION$" sorts right after every "VERIFICATION#…" key.
        upper = VERIFICATION_PREFIX + before if before else "VERIFICATION$"
        items = self._table.query(partition(database), "sk < :upper", forward=False, upper=upper)
        for item in items:
            if not item["sk"]["S"].startswith(VERIFICATION_PREFIX):
                return  # below the drills' keys
            yield VerificationRecord.model_validate(fields(item))

    def start_verification(
        self,
        database: str,
        verification_id: str,
        at: datetime,
        *,
        runner: str,
        deadline_at: datetime,
    ) -> VerificationRecord | None:
        """`scheduled` → `running`; None when it is not scheduled any more (a retry)."""
        item = self._table.start_run(
            verification_key(database, verification_id), verification_id, at,
            runner=runner, deadline_at=deadline_at,
        )  # fmt: skip
        return VerificationRecord.model_validate(fields(item)) if item is not None else None

    def finish_verification(
        self, record: VerificationRecord, state: VerificationState, *, expected_status: str
    ) -> bool:
        """Record the finished drill, the database's summary of it and free its lock,
        atomically; False (nothing written) when the drill is not in `expected_status`
        any more (given up meanwhile)."""
        update = holding(record)
        update["ExpressionAttributeValues"] |= values(expected=expected_status)
        try:
            self._table.transact(
                {
                    "Update": {
                        "Key": verification_key(record.database, record.id),
                        "ConditionExpression": "#id = :id AND #status = :expected",
                        **update,
                    }
                },
                {
                    "Update": {
                        "Key": database_key(record.database),
                        "UpdateExpression": "SET verification_state = :state "
                        "REMOVE active_verification_id",
                        "ConditionExpression": "active_verification_id = :id",
                        "ExpressionAttributeValues": values(id=record.id, state=_map(state)),
                    }
                },
            )
        except ConditionFailed:
            return False
        return True

    def mark_backup(
        self, database: str, backup_id: str, at: datetime, result: VerificationResult
    ) -> None:
        """The backup's `verified_at` and `verification` (nothing if it is gone)."""
        self._table.update_if(
            backup_key(database, backup_id),
            UpdateExpression="SET verified_at = :at, verification = :result",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=values(at=to_rfc3339(at), result=result),
        )
