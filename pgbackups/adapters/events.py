"""Events on EventBridge, source `pgbackups`: `Backup Succeeded` / `Backup Failed`,
`Restore Succeeded` / `Restore Failed`, `Verification Passed` / `Verification Failed`,
`PITR Broken` when a chain of continuous backups breaks, `PITR Recovered` when restoring
is possible again after it (the new chain's base backup is stored), and `PITR Slot Left` when a
removed database's replication slot could not be dropped."""

from __future__ import annotations

import json
from typing import Any

from pgbackups.domain.models import BackupRecord
from pgbackups.domain.restores import RestoreRecord
from pgbackups.domain.verifications import VerificationRecord

EVENT_SOURCE = "pgbackups"


class BackupEvents:
    def __init__(self, events: Any, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def publish(self, record: BackupRecord) -> None:
        detail_type = "Backup Succeeded" if record.status == "done" else "Backup Failed"
        self._put(detail_type, record.model_dump_json())

    def publish_restore(self, record: RestoreRecord) -> None:
        """`Restore Succeeded` / `Restore Failed`: the record, which holds no URL."""
        detail_type = "Restore Succeeded" if record.status == "done" else "Restore Failed"
        self._put(detail_type, record.model_dump_json())

    def publish_verification(self, record: VerificationRecord) -> None:
        """`Verification Passed` / `Verification Failed`: which drill of which backup, and
        the checks that failed."""
        detail_type = "Verification Passed" if record.passed else "Verification Failed"
        detail = {
            "database": record.database,
            "verification_id": record.id,
            "backup_id": record.backup_id,
            "kind": record.kind,
            "status": record.status,
            "failed_checks": record.failed_checks,
            "error": record.error,
        }
        self._put(detail_type, json.dumps(detail))

    def publish_pitr_broken(self, detail: dict[str, object]) -> None:
        """`PITR Broken`: a chain of continuous backups ended; a new one starts."""
        self._put("PITR Broken", json.dumps(detail))

    def publish_pitr_recovered(self, detail: dict[str, object]) -> None:
        """`PITR Recovered`: the break ended; a new chain has its base backup."""
        self._put("PITR Recovered", json.dumps(detail))

    def publish_pitr_slot_left(self, detail: dict[str, object]) -> None:
        """`PITR Slot Left`: the server keeps WAL for a slot nobody reads any more."""
        self._put("PITR Slot Left", json.dumps(detail))

    def _put(self, detail_type: str, detail: str) -> None:
        response = self._events.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": detail,
                    "EventBusName": self._bus,
                    "Resources": [],
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise RuntimeError(
                f"EventBridge refused the {detail_type} event: {response['Entries']}"
            )
