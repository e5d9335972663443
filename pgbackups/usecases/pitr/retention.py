"""Expire continuous backups: base backups and WAL older than the window.

WAL files are found through the catalog's records, and the partial files the capture
replaced through their keys. Chains archived before WAL files were recorded lose their
WAL with the whole chain, when it expires."""

from __future__ import annotations

from datetime import datetime

from pgbackups.domain.pitr import BaseBackup, WalChain, WalFile, partial_wal_file
from pgbackups.domain.recovery import plan_pitr_expiry
from pgbackups.services import Services
from pgbackups.usecases.pitr.restore_plan import RESTORE_URL_LIFETIME


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
        else:
            files = services.pitr.wal_files(database, chain.id)
            if floor is not None:
                expired = [f for f in files if f.start_lsn + chain.segment_size <= floor]
                for file in expired:
                    services.pitr.delete_wal_file(file)  # before the object: no plan names it
                    services.archives.delete(file.key)
                files = [f for f in files if f not in expired]
            _delete_replaced_partial_files(services, chain, files)
    return plan.delete_bases


def _delete_replaced_partial_files(
    services: Services, chain: WalChain, files: list[WalFile]
) -> None:
    """Each capture stores the partial file under a new key: the ones a newer file
    replaced go once no restore plan's URL can name them any more. Only keys the
    capture writes are read; anything else in the bucket is left alone."""
    recorded = {f.name: f for f in files}
    versions: dict[str, list[tuple[datetime, str]]] = {}
    for key in services.archives.keys(chain.wal_prefix()):
        if (found := partial_wal_file(chain, key)) is not None:
            versions.setdefault(found[0], []).append((found[1], key))
    forgotten = services.clock() - RESTORE_URL_LIFETIME
    for name, stored in versions.items():
        stored.sort()
        current = recorded.get(name)
        for index, (stored_at, key) in enumerate(stored):
            if current is not None and key == current.key:
                continue
            # Replaced when the next file of the segment was stored; a segment whose
            # record expired has nothing newer.
            if index + 1 < len(stored):
                replaced_at = stored[index + 1][0]
            else:
                replaced_at = current.archived_at if current is not None else stored_at
            if replaced_at <= forgotten:
                services.archives.delete(key)
