"""Expire continuous backups: base backups and WAL older than the window."""

from __future__ import annotations

from pgbackups.domain.pitr import BaseBackup, plan_pitr_expiry
from pgbackups.ports import Services
from pgbackups.postgres import wal


def apply_pitr_retention(services: Services, database: str) -> list[BaseBackup]:
    """Delete base backups and WAL older than the window; never what a kept backup needs."""
    state = services.pitr.get_state(database)
    if state is None:
        return []
    chains = services.pitr.chains(database)
    bases = services.pitr.base_backups(database)
    plan = plan_pitr_expiry(
        chains, bases, state.chain_id if state.enabled else None, state.window_days,
        services.clock(),
    )  # fmt: skip
    for base in plan.delete_bases:
        services.archives.delete(base.object_key)
        services.pitr.delete_base_backup(base)
    for chain in chains:
        floor = plan.wal_floor.get(chain.id)
        if chain in plan.delete_chains:
            for key in services.archives.keys(f"databases/{database}/pitr/{chain.id}/"):
                services.archives.delete(key)
            services.pitr.delete_chain(chain)
        elif floor is not None:
            for key in services.archives.keys(chain.wal_prefix()):
                name = key.removeprefix(chain.wal_prefix())[:24]
                start = wal.segment_start(name, chain.segment_size)
                if start + chain.segment_size <= floor:
                    services.archives.delete(key)
    return plan.delete_bases
