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

import contextlib
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from pgbackups.adapters.dynamodb import (
    ConditionFailed,
    Table,
    database_item_key,
    fields,
    holding,
    partition,
    to_item,
    values,
)
from pgbackups.domain.models import to_rfc3339
from pgbackups.domain.pitr import (
    BaseBackup,
    BaseBackupRun,
    PitrSettings,
    PitrState,
    WalChain,
    WalFile,
)

STATE_KEY = "PITR"
LEASE_KEY = "PITR#LEASE"
RUN_KEY = "PITR#BASEBACKUP"
CHAIN_PREFIX = "PITRCHAIN#"
BASE_PREFIX = "PITRBASE#"
WAL_PREFIX = "PITRWAL#"


class PitrCatalog:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._table = Table(dynamodb, table_name)

    # -- state -------------------------------------------------------------------------

    def get_state(self, database: str) -> PitrState | None:
        item = self._table.get(database_item_key(database, STATE_KEY))
        return PitrState.model_validate(fields(item)) if item else None

    def put_state(self, state: PitrState) -> None:
        self._table.put(to_item(database_item_key(state.database, STATE_KEY), state))

    def change_settings(self, database: str, settings: PitrSettings) -> PitrState | None:
        """Set the settings of continuous backups that are on, and only them: what the
        capture writes meanwhile (status, chain) is kept. None when they are not on."""
        try:
            item = self._table.update(
                database_item_key(database, STATE_KEY),
                UpdateExpression="SET base_backup_every_days = :every, window_days = :window",
                ConditionExpression="enabled = :on",
                ExpressionAttributeValues=values(
                    every=settings.base_backup_every_days, window=settings.window_days, on=True
                ),
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return None
        return PitrState.model_validate(fields(item))

    def move_to_chain(
        self, database: str, broken_chain_id: str, chain_id: str, reason: str, at: datetime
    ) -> bool:
        """`broken` since `at` (or since the break it already is in), the capture going on
        with `chain_id`, and only that: the settings are kept. False when the state does
        not extend `broken_chain_id` any more."""
        return self._table.update_if(
            database_item_key(database, STATE_KEY),
            UpdateExpression=(
                "SET #status = :broken, broken_reason = :reason, chain_id = :new, "
                "broken_since = if_not_exists(broken_since, :at)"
            ),
            ConditionExpression="chain_id = :old",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values(
                broken="broken",
                reason=reason,
                new=chain_id,
                old=broken_chain_id,
                at=to_rfc3339(at),
            ),
        )

    def mark_ok(self, database: str, chain_id: str) -> PitrState | None:
        """A broken database whose new chain `chain_id` has its base backup is `ok` again:
        the state as it was (broken, since when), or None when it was not broken, or
        broken in another chain."""
        try:
            item = self._table.update(
                database_item_key(database, STATE_KEY),
                UpdateExpression="SET #status = :ok REMOVE broken_reason, broken_since",
                ConditionExpression="#status = :broken AND chain_id = :chain",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values(ok="ok", broken="broken", chain=chain_id),
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:
            return None
        return PitrState.model_validate(fields(item))

    def enabled_databases(self, databases: list[str]) -> list[PitrState]:
        states = [self.get_state(name) for name in databases]
        return [state for state in states if state is not None and state.enabled]

    # -- chains and base backups -----------------------------------------------------------

    def put_chain(self, chain: WalChain) -> None:
        self._table.put(to_item(database_item_key(chain.database, CHAIN_PREFIX + chain.id), chain))

    def get_chain(self, database: str, chain_id: str) -> WalChain:
        item = self._table.get(database_item_key(database, CHAIN_PREFIX + chain_id))
        if item is None:
            raise KeyError(f"no chain {chain_id} of {database}")
        return WalChain.model_validate(fields(item))

    def chains(self, database: str) -> list[WalChain]:
        return [WalChain.model_validate(i) for i in self._items(database, CHAIN_PREFIX)]

    def delete_chain(self, chain: WalChain) -> None:
        self._table.delete(database_item_key(chain.database, CHAIN_PREFIX + chain.id))

    def base_backups(self, database: str) -> list[BaseBackup]:
        return [BaseBackup.model_validate(i) for i in self._items(database, BASE_PREFIX)]

    def delete_base_backup(self, base: BaseBackup) -> None:
        self._table.delete(database_item_key(base.database, BASE_PREFIX + base.id))

    # -- the base backup on its way (one per database) -------------------------------------

    def base_backup_run(self, database: str) -> BaseBackupRun | None:
        item = self._table.get(database_item_key(database, RUN_KEY))
        return BaseBackupRun.model_validate(fields(item)) if item else None

    def create_base_backup_run(self, run: BaseBackupRun) -> bool:
        """Record `run` as the database's base backup on its way; False while another one
        is scheduled or running (a failed one is replaced)."""
        update = holding(run)
        update["ExpressionAttributeValues"] |= values(failed="error")
        return self._table.update_if(
            database_item_key(run.database, RUN_KEY),
            ConditionExpression="attribute_not_exists(#status) OR #status = :failed",
            **update,
        )

    def start_base_backup_run(
        self, database: str, run_id: str, at: datetime, *, runner: str, deadline_at: datetime
    ) -> BaseBackupRun | None:
        """`scheduled` → `running` on `runner` until `deadline_at`; None when `run_id` is not
        the scheduled run any more (a retried invocation, or given up)."""
        item = self._table.start_run(
            database_item_key(database, RUN_KEY), run_id, at, runner=runner, deadline_at=deadline_at
        )
        return BaseBackupRun.model_validate(fields(item)) if item is not None else None

    def fail_base_backup_run(self, run: BaseBackupRun, *, expected_status: str) -> bool:
        """Record `run` (status `error`) unless it is not the same run in `expected_status`
        any more; the lock is then free."""
        update = holding(run)
        update["ExpressionAttributeValues"] |= values(expected=expected_status)
        return self._table.update_if(
            database_item_key(run.database, RUN_KEY),
            ConditionExpression="#id = :id AND #status = :expected",
            **update,
        )

    def store_base_backup(self, base: BaseBackup) -> bool:
        """Record the stored `base` and end its run, atomically; False (nothing written)
        when its run is not `running` any more (given up meanwhile)."""
        try:
            self._table.transact(
                {
                    "Update": {
                        "Key": database_item_key(base.database, BASE_PREFIX + base.id),
                        **holding(base),
                    }
                },
                {
                    "Delete": {
                        "Key": database_item_key(base.database, RUN_KEY),
                        "ConditionExpression": "#id = :id AND #status = :running",
                        "ExpressionAttributeNames": {"#id": "id", "#status": "status"},
                        "ExpressionAttributeValues": values(id=base.id, running="running"),
                    }
                },
            )
        except ConditionFailed:
            return False
        return True

    # -- WAL files: what the capture stored, the only source of restore plans ---------------

    def put_wal_file(self, file: WalFile) -> None:
        """Record `file` (a segment's complete file replaces its partial one's record)."""
        self._table.put(to_item(self._wal_key(file), file))

    def wal_files(self, database: str, chain_id: str) -> list[WalFile]:
        """The chain's WAL files in name order; an item that is not a WAL file's record
        is left out (the restore plan then finds a hole where it was)."""
        found = []
        for item in self._items(database, f"{WAL_PREFIX}{chain_id}#"):
            try:
                found.append(WalFile.model_validate(item))
            except ValidationError:
                continue
        return found

    def delete_wal_file(self, file: WalFile) -> None:
        self._table.delete(self._wal_key(file))

    @staticmethod
    def _wal_key(file: WalFile) -> dict[str, Any]:
        return database_item_key(file.database, f"{WAL_PREFIX}{file.chain_id}#{file.name}")

    def _items(self, database: str, prefix: str) -> list[dict[str, Any]]:
        items = self._table.query(partition(database), "begins_with(sk, :prefix)", prefix=prefix)
        return [fields(item) for item in items]

    # -- the lease: never two captures of one database at once --------------------------------

    def acquire_lease(self, database: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take the capture lease unless another owner holds one that has not expired."""
        return self._table.update_if(
            database_item_key(database, LEASE_KEY),
            UpdateExpression="SET lease_owner = :owner, lease_until = :until",
            ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now",
            ExpressionAttributeValues=values(
                owner=owner, until=until.timestamp(), now=now.timestamp()
            ),
        )

    def release_lease(self, database: str, owner: str) -> None:
        with contextlib.suppress(ConditionFailed):  # another owner's by now
            self._table.delete(
                database_item_key(database, LEASE_KEY),
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues=values(owner=owner),
            )
