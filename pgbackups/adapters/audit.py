"""The audit trail in the catalog's DynamoDB table.

    pk = "AUDIT"   sk = "ENTRY#<seq, 12 digits>"   an AuditEntry, and `ttl`
    pk = "AUDIT"   sk = "HEAD"                     {seq, hash} of the newest entry

An entry is put in the same transaction that moves the head from the entry
before it, on the condition that the head is still there: two writers that
read the same head cannot both succeed, so the chain never forks (the loser
reads the new head and tries again). `ttl` (epoch seconds, the table's TTL
attribute) lets DynamoDB drop entries after `AUDIT_RETENTION`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from pgbackups.domain.audit import EMPTY_HEAD, AuditEntry, ChainHead, expires_at

AUDIT_PK = "AUDIT"
TTL_ATTRIBUTE = "ttl"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_ENTRY_FIELDS = {field.name for field in fields(AuditEntry)}
_HEAD_KEY = {"pk": {"S": AUDIT_PK}, "sk": {"S": "HEAD"}}


def _entry_key(seq: int) -> dict[str, Any]:
    return {"pk": {"S": AUDIT_PK}, "sk": {"S": f"ENTRY#{seq:012d}"}}


def _entry(item: dict[str, Any]) -> AuditEntry:
    values = {
        name: _deserializer.deserialize(value)
        for name, value in item.items()
        if name in _ENTRY_FIELDS
    }
    values["seq"], values["status"] = int(values["seq"]), int(values["status"])
    return AuditEntry(**values)


class AuditLog:
    """The chain on a DynamoDB client and table name."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def head(self) -> ChainHead:
        item = self._db.get_item(TableName=self._table, Key=_HEAD_KEY, ConsistentRead=True).get(
            "Item"
        )
        if item is None:
            return EMPTY_HEAD
        return ChainHead(int(item["seq"]["N"]), item["hash"]["S"])

    def append(self, entry: AuditEntry) -> bool:
        """Puts `entry` after the head it was chained to; False when another entry
        took that place first (read the head again and retry)."""
        item = (
            _entry_key(entry.seq)
            | {name: _serializer.serialize(value) for name, value in entry.fields().items()}
            | {TTL_ATTRIBUTE: {"N": str(int(expires_at(entry).timestamp()))}}
        )
        if entry.seq == 1:
            head_condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            head_condition = {
                "ConditionExpression": "seq = :previous",
                "ExpressionAttributeValues": {":previous": {"N": str(entry.seq - 1)}},
            }
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": _HEAD_KEY
                            | {"seq": {"N": str(entry.seq)}, "hash": {"S": entry.hash}},
                            **head_condition,
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] in (
                "TransactionCanceledException",
                "TransactionConflictException",
            ):
                return False
            raise
        return True

    def entries(self, *, newest_first: bool, after: int | None = None) -> Iterator[AuditEntry]:
        """Every entry in sequence order, starting past `after` (a sequence number)."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": AUDIT_PK}, ":prefix": {"S": "ENTRY#"}},
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        if after is not None:
            query["ExclusiveStartKey"] = _entry_key(after)
        while True:
            page = self._db.query(**query)
            yield from (_entry(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
