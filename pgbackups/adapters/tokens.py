"""API tokens in the catalog's DynamoDB table.

    pk = "TOKENS"   sk = "TOKEN#<id>"    a TokenRecord, its salt and digest
    pk = "TOKENS"   sk = "NAME#<name>"   {token_id}: names are unique

The bearer token carries its id, so the authorizer reads ONE item by key. The
secret itself is never stored: only HMAC-SHA256(salt, secret).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from pgbackups.domain.access import IssuedToken, TokenExists, TokenNotFound, TokenRecord
from pgbackups.domain.models import to_rfc3339

TOKENS_PK = "TOKENS"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _token_key(token_id: str) -> dict[str, Any]:
    return {"pk": {"S": TOKENS_PK}, "sk": {"S": f"TOKEN#{token_id}"}}


def _name_key(name: str) -> dict[str, Any]:
    return {"pk": {"S": TOKENS_PK}, "sk": {"S": f"NAME#{name}"}}


def _record(item: dict[str, Any]) -> TokenRecord:
    fields = {k: _deserializer.deserialize(v) for k, v in item.items()}
    return TokenRecord.model_validate(
        {k: v for k, v in fields.items() if k in TokenRecord.model_fields}
    )


def _cancelled_by_condition(error: ClientError) -> bool:
    reasons = error.response.get("CancellationReasons", [])
    return any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons)


class TokenStore:
    """Tokens on a DynamoDB client and table name."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def create(self, issued: IssuedToken) -> None:
        record = issued.record
        fields = record.model_dump(mode="json", exclude_none=True)
        fields |= {"salt": issued.salt, "digest": issued.digest}
        item = _token_key(record.token_id) | {
            name: _serializer.serialize(value) for name, value in fields.items()
        }
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": _name_key(record.name) | {"token_id": {"S": record.token_id}},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self._table, "Item": item}},
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException" and (
                _cancelled_by_condition(error)
            ):
                raise TokenExists(f"a token named {record.name} exists") from None
            raise

    def list(self) -> list[TokenRecord]:
        records: list[TokenRecord] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": TOKENS_PK}, ":prefix": {"S": "TOKEN#"}},
        }
        while True:
            page = self._db.query(**query)
            records.extend(_record(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(records, key=lambda record: record.name)
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get(self, token_id: str) -> tuple[TokenRecord, str, str] | None:
        """The token's record, salt and digest, or None."""
        item = self._db.get_item(
            TableName=self._table, Key=_token_key(token_id), ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return _record(item), item["salt"]["S"], item["digest"]["S"]

    def revoke(self, name: str) -> TokenRecord:
        found = self._db.get_item(
            TableName=self._table, Key=_name_key(name), ConsistentRead=True
        ).get("Item")
        if found is None:
            raise TokenNotFound(f"no token named {name}")
        token_id = found["token_id"]["S"]
        stored = self.get(token_id)
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": _name_key(name),
                            "ConditionExpression": "token_id = :id",
                            "ExpressionAttributeValues": {":id": {"S": token_id}},
                        }
                    },
                    {"Delete": {"TableName": self._table, "Key": _token_key(token_id)}},
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException" and (
                _cancelled_by_condition(error)
            ):
                raise TokenNotFound(f"no token named {name}") from None
            raise
        if stored is None:
            raise TokenNotFound(f"no token named {name}")
        return stored[0]

    def touch(self, token_id: str, at: datetime) -> None:
        """Records a use; a token revoked meanwhile is not brought back."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_token_key(token_id),
                UpdateExpression="SET last_used_at = :at",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":at": {"S": to_rfc3339(at)}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
