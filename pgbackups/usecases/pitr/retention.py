"""Expire continuous backups: base backups and WAL older than the window.

WAL files are found through the catalog's records. Chains archived before WAL files
were recorded lose their WAL with the whole chain, when it expires."""

from __future__ import annotations

from pgbackups.domain.pitr import BaseBackup, plan_pitr_expiry
from pgbackups.ports import Services


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
            for file in services.pitr.wal_files(database, chain.id):
                services.pitr.delete_wal_file(file)
            for key in services.archives.keys(f"databases/{database}/pitr/{chain.id}/"):
                services.archives.delete(key)
            services.pitr.delete_chain(chain)
        elif floor is not None:
            # From the catalog, never from a listing: a key is not trusted to be a WAL file.
            for file in services.pitr.wal_files(database, chain.id):
                if file.start_lsn + chain.segment_size <= floor:
                    services.pitr.delete_wal_file(file)  # before the object: no plan names it
                    services.archives.delete(file.key)
    return plan.delete_bases
