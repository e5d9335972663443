"""Backup events on EventBridge: `Backup Succeeded` / `Backup Failed`, source `pgbackups`."""

from __future__ import annotations

from typing import Any

from pgbackups.domain.models import BackupRecord

EVENT_SOURCE = "pgbackups"


class BackupEvents:
    def __init__(self, events: Any, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def publish(self, record: BackupRecord) -> None:
        detail_type = "Backup Succeeded" if record.status == "done" else "Backup Failed"
        response = self._events.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": record.model_dump_json(),
                    "EventBusName": self._bus,
                    "Resources": [],
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise RuntimeError(
                f"EventBridge refused the {detail_type} event: {response['Entries']}"
            )
