"""What GET …/pitr shows: the settings, the status, the recoverable ranges and the breaks
between them, the base backups and the one on its way, read from the catalog and
computed here, once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pgbackups.domain.pitr import BaseBackup, BaseBackupRun, PitrState, WalChain
from pgbackups.domain.recovery import (
    Break,
    RecoverableRange,
    Window,
    breaks,
    history_kept_until,
    recoverable_ranges,
    recovery_window,
    window_of,
)
from pgbackups.postgres import lsn
from pgbackups.services import Services


@dataclass(frozen=True)
class PitrOverview:
    state: PitrState  # a database that never had continuous backups: the defaults, disabled
    ranges: list[RecoverableRange]  # oldest first
    breaks: list[Break]  # oldest first
    broken_since: datetime | None  # while `broken`: when the break began
    last_archived_at: datetime | None  # of the chain the capture extends
    last_archived_wal: str | None  # the newest WAL file stored, of any kept chain
    lag_seconds: float | None  # age of the newest WAL in S3, while enabled
    history_kept_until: datetime | None  # off, with stored history: when it expires
    base_backups: list[BaseBackup]  # oldest first
    base_backup_run: BaseBackupRun | None  # on its way, or the last one that failed

    @property
    def window(self) -> Window:
        return window_of(self.ranges)


def pitr_overview(services: Services, database: str) -> PitrOverview:
    services.catalog.get_database(database)  # DatabaseNotFound
    state = services.pitr.get_state(database) or PitrState(database=database)
    chains = services.pitr.chains(database)
    bases = sorted(services.pitr.base_backups(database), key=lambda b: b.finished_at)
    ranges = recoverable_ranges(chains, bases)
    ended = breaks(chains, bases)
    current = next((c for c in chains if c.id == state.chain_id), None)
    archived = current.last_archived_at if current else None
    lag = (services.clock() - archived).total_seconds() if archived and state.enabled else None
    return PitrOverview(
        state=state,
        ranges=ranges,
        breaks=ended,
        broken_since=_broken_since(state, ended),
        last_archived_at=archived,
        last_archived_wal=_last_wal_name(chains),
        lag_seconds=lag,
        history_kept_until=history_kept_until(state, ranges),
        base_backups=bases,
        base_backup_run=services.pitr.base_backup_run(database),
    )


def _broken_since(state: PitrState, ended: list[Break]) -> datetime | None:
    """Recorded with the break; for a break recorded before that was, its oldest chain
    end not recovered from."""
    if state.status != "broken":
        return None
    lasting = [b.at for b in ended if b.recovered_at is None]
    return state.broken_since or min(lasting, default=None)


def _last_wal_name(chains: list[WalChain]) -> str | None:
    """The WAL file holding the newest byte stored: of the newest chain that stored any."""
    for chain in sorted(chains, key=lambda c: c.id, reverse=True):
        if chain.archived_lsn > chain.start_lsn:
            return lsn.segment_name(chain.timeline, chain.archived_lsn - 1, chain.segment_size)
    return None


def recovery_window_of(services: Services, database: str) -> Window:
    return recovery_window(services.pitr.chains(database), services.pitr.base_backups(database))
