"""What GET …/pitr shows: the settings, the status, the recovery window, the base backups
and the one on its way, read from the catalog and computed here, once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pgbackups.domain.pitr import (
    BaseBackup,
    BaseBackupRun,
    PitrState,
    Window,
    recovery_window,
)
from pgbackups.services import Services


@dataclass(frozen=True)
class PitrOverview:
    state: PitrState  # a database that never had continuous backups: the defaults, disabled
    window: Window
    last_archived_at: datetime | None  # of the chain the capture extends
    lag_seconds: float | None  # age of the newest WAL in S3, while enabled
    base_backups: list[BaseBackup]  # oldest first
    base_backup_run: BaseBackupRun | None  # on its way, or the last one that failed


def pitr_overview(services: Services, database: str) -> PitrOverview:
    services.catalog.get_database(database)  # DatabaseNotFound
    state = services.pitr.get_state(database) or PitrState(database=database)
    chains = services.pitr.chains(database)
    bases = sorted(services.pitr.base_backups(database), key=lambda b: b.finished_at)
    current = next((c for c in chains if c.id == state.chain_id), None)
    archived = current.last_archived_at if current else None
    lag = (services.clock() - archived).total_seconds() if archived and state.enabled else None
    return PitrOverview(
        state=state,
        window=recovery_window(chains, bases),
        last_archived_at=archived,
        lag_seconds=lag,
        base_backups=bases,
        base_backup_run=services.pitr.base_backup_run(database),
    )


def recovery_window_of(services: Services, database: str) -> Window:
    return recovery_window(services.pitr.chains(database), services.pitr.base_backups(database))
