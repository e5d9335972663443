"""Continuous backups in the catalog's table: state, chains, base backups, the capture lease.

Items live in the database's own partition, next to its backups (whose sort keys
start with `BACKUP#`, so backup queries never see these):

    pk = "DATABASE#<name>"   sk = "PITR"               PitrState
    pk = "DATABASE#<name>"   sk = "PITR#LEASE"         the capture lease (owner, until)
    pk = "DATABASE#<name>"   sk = "PITRCHAIN#<ulid>"   WalChain
    pk = "DATABASE#<name>"   sk = "PITRBASE#<ulid>"    BaseBackup
    pk = "DATABASE#<name>"   sk = "PITRWAL#<chain ulid>#<WAL file name>"
                                                       WalFile: what the capture stored
    pk = "DATABASE#<name>"   sk = "PITR#BASEBACKUP"    BaseBackupRun: the base backup on
                                                       its way, and the one-at-a-time lock

The backups' runners (the backup function, the Fargate task) may update and delete
items but not put them (template.yaml), so what they write goes through UpdateItem.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from pgbackups.adapters.catalog import TransactionRefused, transact
from pgbackups.domain.models import to_rfc3339
from pgbackups.domain.pitr import (
    BaseBackup,
    BaseBackupRun,
    PitrSettings,
    PitrState,
    WalChain,
    WalFile,
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _key(database: str, sort_key: str) -> dict[str, Any]:
    return {"pk": {"S": f"DATABASE#{database}"}, "sk": {"S": sort_key}}


def _item(key: dict[str, Any], record: BaseModel) -> dict[str, Any]:
    fields = record.model_dump(mode="json", exclude_none=True)
    return key | {name: _serializer.serialize(value) for name, value in fields.items()}


def _update(record: BaseModel) -> dict[str, Any]:
    """UpdateExpression, names and values that make the item hold `record`: its fields
    set, the ones it leaves empty removed (a failed run's error, say)."""
    fields = record.model_dump(mode="json")
    kept = {name: value for name, value in fields.items() if value is not None}
    expression = "SET " + ", ".join(f"#{name} = :{name}" for name in kept)
    if removed := [name for name, value in fields.items() if value is None]:
        expression += " REMOVE " + ", ".join(f"#{name}" for name in removed)
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeNames": {f"#{name}": name for name in fields},
        "ExpressionAttributeValues": {
            f":{name}": _serializer.serialize(value) for name, value in kept.items()
        },
    }


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


RUN_KEY = "PITR#BASEBACKUP"


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

    def change_settings(self, database: str, settings: PitrSettings) -> PitrState | None:
        """Set the settings of continuous backups that are on, and only them: what the
        capture writes meanwhile (status, chain) is kept. None when they are not on."""
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key=_key(database, "PITR"),
                UpdateExpression="SET base_backup_every_days = :every, window_days = :window",
                ConditionExpression="enabled = :on",
                ExpressionAttributeValues={
                    ":every": {"N": str(settings.base_backup_every_days)},
                    ":window": {"N": str(settings.window_days)},
                    ":on": {"BOOL": True},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if _is_conditional_failure(error):
                return None
            raise
        return PitrState.model_validate(_fields(item))

    def move_to_chain(
        self, database: str, broken_chain_id: str, chain_id: str, reason: str
    ) -> bool:
        """`broken`, the capture going on with `chain_id`, and only that: the settings are
        kept. False when the state does not extend `broken_chain_id` any more."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(database, "PITR"),
                UpdateExpression="SET #status = :broken, broken_reason = :reason, chain_id = :new",
                ConditionExpression="chain_id = :old",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":broken": {"S": "broken"},
                    ":reason": {"S": reason},
                    ":new": {"S": chain_id},
                    ":old": {"S": broken_chain_id},
                },
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def mark_ok(self, database: str, chain_id: str) -> None:
        """A broken database whose new chain `chain_id` has its base backup is `ok` again."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(database, "PITR"),
                UpdateExpression="SET #status = :ok REMOVE broken_reason",
                ConditionExpression="#status = :broken AND chain_id = :chain",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":ok": {"S": "ok"},
                    ":broken": {"S": "broken"},
                    ":chain": {"S": chain_id},
                },
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise

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

    def base_backups(self, database: str) -> list[BaseBackup]:
        return [BaseBackup.model_validate(i) for i in self._items(database, "PITRBASE#")]

    def delete_base_backup(self, base: BaseBackup) -> None:
        self._db.delete_item(TableName=self._table, Key=_key(base.database, f"PITRBASE#{base.id}"))

    # -- WAL files: what the capture stored, the only source of restore plans ---------------

    def put_wal_file(self, file: WalFile) -> None:
        """Record `file` (a segment's complete file replaces its partial one's record)."""
        self._db.put_item(
            TableName=self._table,
            Item=_item(_key(file.database, f"PITRWAL#{file.chain_id}#{file.name}"), file),
        )

    def wal_files(self, database: str, chain_id: str) -> list[WalFile]:
        """The chain's WAL files in name order; an item that is not a WAL file's record
        is left out (the restore plan then finds a hole where it was)."""
        found = []
        for item in self._items(database, f"PITRWAL#{chain_id}#"):
            try:
                found.append(WalFile.model_validate(item))
            except ValidationError:
                continue
        return found

    def delete_wal_file(self, file: WalFile) -> None:
        self._db.delete_item(
            TableName=self._table, Key=_key(file.database, f"PITRWAL#{file.chain_id}#{file.name}")
        )

    # -- the base backup on its way (one per database) -------------------------------------

    def base_backup_run(self, database: str) -> BaseBackupRun | None:
        item = self._db.get_item(
            TableName=self._table, Key=_key(database, RUN_KEY), ConsistentRead=True
        ).get("Item")
        return BaseBackupRun.model_validate(_fields(item)) if item else None

    def create_base_backup_run(self, run: BaseBackupRun) -> bool:
        """Record `run` as the database's base backup on its way; False while another one
        is scheduled or running (a failed one is replaced)."""
        update = _update(run)
        update["ExpressionAttributeValues"][":failed"] = {"S": "error"}
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(run.database, RUN_KEY),
                ConditionExpression="attribute_not_exists(#status) OR #status = :failed",
                **update,
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def start_base_backup_run(
        self, database: str, run_id: str, at: datetime, *, runner: str, deadline_at: datetime
    ) -> BaseBackupRun | None:
        """`scheduled` → `running` on `runner` until `deadline_at`; None when `run_id` is not
        the scheduled run any more (a retried invocation, or given up)."""
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key=_key(database, RUN_KEY),
                UpdateExpression=(
                    "SET #status = :running, started_at = :at, runner = :runner, "
                    "deadline_at = :deadline"
                ),
                ConditionExpression="#id = :id AND #status = :scheduled",
                ExpressionAttributeNames={"#status": "status", "#id": "id"},
                ExpressionAttributeValues={
                    ":running": {"S": "running"},
                    ":scheduled": {"S": "scheduled"},
                    ":id": {"S": run_id},
                    ":at": {"S": to_rfc3339(at)},
                    ":runner": {"S": runner},
                    ":deadline": {"S": to_rfc3339(deadline_at)},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if _is_conditional_failure(error):
                return None
            raise
        return BaseBackupRun.model_validate(_fields(item))

    def fail_base_backup_run(self, run: BaseBackupRun, *, expected_status: str) -> bool:
        """Record `run` (status `error`) unless it is not the same run in `expected_status`
        any more; the lock is then free."""
        update = _update(run)
        update["ExpressionAttributeNames"]["#id"] = "id"
        update["ExpressionAttributeValues"] |= {
            ":id": {"S": run.id},
            ":expected": {"S": expected_status},
        }
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(run.database, RUN_KEY),
                ConditionExpression="#id = :id AND #status = :expected",
                **update,
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def store_base_backup(self, base: BaseBackup) -> bool:
        """Record the stored `base` and end its run, atomically; False (nothing written)
        when its run is not `running` any more (given up meanwhile)."""
        update = _update(base)
        try:
            transact(
                self._db,
                [
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": _key(base.database, f"PITRBASE#{base.id}"),
                            **update,
                        }
                    },
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": _key(base.database, RUN_KEY),
                            "ConditionExpression": "#id = :id AND #status = :running",
                            "ExpressionAttributeNames": {"#id": "id", "#status": "status"},
                            "ExpressionAttributeValues": {
                                ":id": {"S": base.id},
                                ":running": {"S": "running"},
                            },
                        }
                    },
                ],
            )
        except TransactionRefused:
            return False
        return True

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
