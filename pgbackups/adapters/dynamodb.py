"""The one DynamoDB table both catalogs share: keys, item mapping, conditions,
transactions and cursors.

Key schema `pk`/`sk` (declared once in template.yaml):

    pk = "DATABASES"          sk = "DATABASE#<name>"   a database
    pk = "DATABASE#<name>"    sk = "BACKUP#<ulid>"     its backups (adapters.catalog)
    pk = "DATABASE#<name>"    sk = "PITR…"             its continuous backups (adapters.pitr)

Callers see attribute dicts in and out (records are pydantic models dumped to JSON
types), and `ConditionFailed` for a write whose condition did not hold.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel

from pgbackups.domain.errors import InvalidInput
from pgbackups.domain.models import BACKUP_ID, to_rfc3339

DATABASES_PK = "DATABASES"
BACKUP_PREFIX = "BACKUP#"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Two writers touching one item at once (the API creating a backup while another
# finishes) cancel each other's transactions with TransactionConflict: try again.
_TRANSIENT = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
_TRANSACTION_ATTEMPTS = 6
_BATCH_GET_LIMIT = 100  # keys per BatchGetItem


# -- keys --------------------------------------------------------------------------------


def partition(database: str) -> str:
    """The partition of a database's own items (backups, continuous backups)."""
    return f"DATABASE#{database}"


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def database_key(name: str) -> dict[str, Any]:
    return key(DATABASES_PK, f"DATABASE#{name}")


def database_item_key(database: str, sort_key: str) -> dict[str, Any]:
    return key(partition(database), sort_key)


def backup_key(database: str, backup_id: str) -> dict[str, Any]:
    return database_item_key(database, BACKUP_PREFIX + backup_id)


# -- item mapping ------------------------------------------------------------------------


def serialize(value: Any) -> dict[str, Any]:
    return _serializer.serialize(_decimals(value))


def _decimals(value: Any) -> Any:
    """Floats as Decimals, in lists and maps too: DynamoDB's numbers."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {name: _decimals(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_decimals(item) for item in value]
    return value


def values(**named: Any) -> dict[str, Any]:
    """ExpressionAttributeValues: `:name` for each keyword."""
    return {f":{name}": serialize(value) for name, value in named.items()}


def to_item(item_key: dict[str, Any], record: BaseModel) -> dict[str, Any]:
    fields = record.model_dump(mode="json", exclude_none=True)
    return item_key | {name: serialize(value) for name, value in fields.items()}


def fields(item: dict[str, Any]) -> dict[str, Any]:
    """An item's attributes but its key, as plain values (for `model_validate`)."""
    return {
        name: _deserializer.deserialize(value)
        for name, value in item.items()
        if name not in ("pk", "sk")
    }


def holding(record: BaseModel, *, exclude: set[str] | None = None) -> dict[str, Any]:
    """UpdateExpression, names and values that make an item hold `record`: its fields
    set, the ones it leaves empty removed (a failed run's error, say)."""
    dumped = record.model_dump(mode="json", exclude=exclude)
    kept = {name: value for name, value in dumped.items() if value is not None}
    expression = "SET " + ", ".join(f"#{name} = :{name}" for name in kept)
    if removed := [name for name, value in dumped.items() if value is None]:
        expression += " REMOVE " + ", ".join(f"#{name}" for name in removed)
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeNames": {f"#{name}": name for name in dumped},
        "ExpressionAttributeValues": values(**kept),
    }


# -- conditions and transactions ---------------------------------------------------------


class ConditionFailed(Exception):
    """A conditional write (or a transaction's condition) did not hold: nothing written.

    `item` is the item as the refusal saw it, when the write asked for it."""

    def __init__(self, item: dict[str, Any] | None = None) -> None:
        super().__init__("the condition of the write did not hold")
        self.item = item


def _conditional(error: ClientError) -> ConditionFailed | None:
    if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
        return None
    return ConditionFailed(error.response.get("Item"))


def _cancellation_codes(error: ClientError) -> set[str]:
    return {reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])}


class Table:
    """The table, on a DynamoDB client: every read consistent, every refused
    condition a `ConditionFailed`."""

    def __init__(self, dynamodb: Any, name: str) -> None:
        self.client = dynamodb
        self.name = name

    def get(self, item_key: dict[str, Any], **request: Any) -> dict[str, Any] | None:
        """The item at `item_key` (raw attributes), or None."""
        answer = self.client.get_item(
            TableName=self.name, Key=item_key, ConsistentRead=True, **request
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def get_many(self, keys: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The items found at `keys`, in a few batched reads, in no order."""
        for start in range(0, len(keys), _BATCH_GET_LIMIT):
            request = {
                self.name: {"Keys": keys[start : start + _BATCH_GET_LIMIT], "ConsistentRead": True}
            }
            while request:
                answer = self.client.batch_get_item(RequestItems=request)
                yield from answer.get("Responses", {}).get(self.name, [])
                request = answer.get("UnprocessedKeys") or {}

    def put(self, item: dict[str, Any], **request: Any) -> None:
        try:
            self.client.put_item(TableName=self.name, Item=item, **request)
        except ClientError as error:
            raise _conditional(error) or error from None

    def update(self, item_key: dict[str, Any], **request: Any) -> dict[str, Any]:
        """UpdateItem; the attributes it returns (empty unless `ReturnValues` asks)."""
        try:
            answer = self.client.update_item(TableName=self.name, Key=item_key, **request)
        except ClientError as error:
            raise _conditional(error) or error from None
        attributes: dict[str, Any] = answer.get("Attributes", {})
        return attributes

    def update_if(self, item_key: dict[str, Any], **request: Any) -> bool:
        """A conditional UpdateItem: False (nothing written) when the condition failed."""
        try:
            self.update(item_key, **request)
        except ConditionFailed:
            return False
        return True

    def start_run(
        self,
        item_key: dict[str, Any],
        run_id: str,
        at: datetime,
        *,
        runner: str,
        deadline_at: datetime,
    ) -> dict[str, Any] | None:
        """A run's `scheduled` → `running` on `runner`, which stops it by `deadline_at`
        for sure (the lifecycle of `models.Run`): the item it leaves, or None when
        `run_id` is not scheduled there any more (a retry, given up, being deleted)."""
        try:
            return self.update(
                item_key,
                UpdateExpression=(
                    "SET #status = :running, started_at = :at, runner = :runner, "
                    "deadline_at = :deadline"
                ),
                ConditionExpression=(
                    "#id = :id AND #status = :scheduled AND attribute_not_exists(deleting_at)"
                ),
                ExpressionAttributeNames={"#status": "status", "#id": "id"},
                ExpressionAttributeValues=values(
                    running="running",
                    scheduled="scheduled",
                    id=run_id,
                    at=to_rfc3339(at),
                    runner=runner,
                    deadline=to_rfc3339(deadline_at),
                ),
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return None

    def delete(self, item_key: dict[str, Any], **request: Any) -> None:
        try:
            self.client.delete_item(TableName=self.name, Key=item_key, **request)
        except ClientError as error:
            raise _conditional(error) or error from None

    def transact(self, *writes: dict[str, Any]) -> None:
        """TransactWriteItems of `{"Update": {...}}`-style writes (the table name added),
        retried on transient conflicts; ConditionFailed when a condition fails."""
        items = [
            {kind: {"TableName": self.name} | write for kind, write in entry.items()}
            for entry in writes
        ]
        for attempt in range(_TRANSACTION_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=items)
                return
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                transient = _cancellation_codes(error) & _TRANSIENT
                if not transient or attempt == _TRANSACTION_ATTEMPTS - 1:
                    raise ConditionFailed() from None
            time.sleep(random.uniform(0.05, 0.2) * 2**attempt)  # noqa: S311 (jitter)

    def query(
        self, pk: str, sort_key: str = "", *, forward: bool = True, **named: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item of partition `pk` matching the sort key condition `sort_key` (on
        `sk`, with its values as keywords), page after page."""
        condition = "pk = :pk" + (f" AND {sort_key}" if sort_key else "")
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values(pk=pk, **named),
            "ScanIndexForward": forward,
            "ConsistentRead": True,
        }
        yield from self._pages(self.client.query, request)

    def scan(self, condition: str, **named: Any) -> Iterator[dict[str, Any]]:
        """Every item of the table matching the filter `condition`, page after page.

        Items are read one page after another, not at one instant: a reader acts on
        what it saw only through conditional writes, or reads the item again."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "FilterExpression": condition,
            "ExpressionAttributeValues": values(**named),
            "ConsistentRead": True,
        }
        yield from self._pages(self.client.scan, request)

    @staticmethod
    def _pages(read: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            answer = read(**request)
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


# -- cursors -----------------------------------------------------------------------------


def encode_cursor(backup_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": backup_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The backup id a page ends at; InvalidInput for anything but a cursor we made."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        backup_id = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidInput("invalid cursor", field="cursor") from None
    if not isinstance(backup_id, str) or not BACKUP_ID.match(backup_id):
        raise InvalidInput("invalid cursor", field="cursor")
    return backup_id
