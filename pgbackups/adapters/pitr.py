"""Continuous backups in the catalog's table: state, chains, base backups, the capture lease.

Items live in the database's own partition, next to its backups (whose sort keys
start with `BACKUP#`, so backup queries never see these):

    pk = "DATABASE#<name>"   sk = "PITR"               PitrState
    pk = "DATABASE#<name>"   sk = "PITR#LEASE"         the capture lease (owner, until)
    pk = "DATABASE#<name>"   sk = "PITRCHAIN#<ulid>"   WalChain
    pk = "DATABASE#<name>"   sk = "PITRBASE#<ulid>"    BaseBackup
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel

from pgbackups.domain.pitr import BaseBackup, PitrState, WalChain

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _key(database: str, sort_key: str) -> dict[str, Any]:
    return {"pk": {"S": f"DATABASE#{database}"}, "sk": {"S": sort_key}}


def _item(key: dict[str, Any], record: BaseModel) -> dict[str, Any]:
    fields = record.model_dump(mode="json", exclude_none=True)
    return key | {name: _serializer.serialize(value) for name, value in fields.items()}


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items() if k not in ("pk", "sk")}


class PitrCatalog:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    # -- state -------------------------------------------------------------------------

    def get_state(self, database: str) -> PitrState | None:
        item = self._db.get_item(
            TableName=self._table, Key=_key(database, "PITR"), ConsistentRead=True
        ).get("Item")
        return PitrState.model_validate(_fields(item)) if item else None

    def put_state(self, state: PitrState) -> None:
        self._db.put_item(TableName=self._table, Item=_item(_key(state.database, "PITR"), state))

    def enabled_databases(self, databases: list[str]) -> list[PitrState]:
        states = [self.get_state(name) for name in databases]
        return [state for state in states if state is not None and state.enabled]

    # -- chains and base backups -----------------------------------------------------------

    def put_chain(self, chain: WalChain) -> None:
        self._db.put_item(
            TableName=self._table, Item=_item(_key(chain.database, f"PITRCHAIN#{chain.id}"), chain)
        )

    def get_chain(self, database: str, chain_id: str) -> WalChain:
        item = self._db.get_item(
            TableName=self._table, Key=_key(database, f"PITRCHAIN#{chain_id}"), ConsistentRead=True
        )["Item"]
        return WalChain.model_validate(_fields(item))

    def chains(self, database: str) -> list[WalChain]:
        return [WalChain.model_validate(i) for i in self._items(database, "PITRCHAIN#")]

    def delete_chain(self, chain: WalChain) -> None:
        self._db.delete_item(
            TableName=self._table, Key=_key(chain.database, f"PITRCHAIN#{chain.id}")
        )

    def put_base_backup(self, base: BaseBackup) -> None:
        self._db.put_item(
            TableName=self._table, Item=_item(_key(base.database, f"PITRBASE#{base.id}"), base)
        )

    def base_backups(self, database: str) -> list[BaseBackup]:
        return [BaseBackup.model_validate(i) for i in self._items(database, "PITRBASE#")]

    def delete_base_backup(self, base: BaseBackup) -> None:
        self._db.delete_item(TableName=self._table, Key=_key(base.database, f"PITRBASE#{base.id}"))

    def _items(self, database: str, prefix: str) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"DATABASE#{database}"},
                ":prefix": {"S": prefix},
            },
            "ConsistentRead": True,
        }
        found = []
        while True:
            response = self._db.query(**request)
            found += [_fields(item) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- the lease: never two captures of one database at once --------------------------------

    def acquire_lease(self, database: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take the capture lease unless another owner holds one that has not expired."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(database, "PITR#LEASE"),
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now",
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": {"N": str(until.timestamp())},
                    ":now": {"N": str(now.timestamp())},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_lease(self, database: str, owner: str) -> None:
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=_key(database, "PITR#LEASE"),
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
