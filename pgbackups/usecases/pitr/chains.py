"""What enabling and the capture share: starting a chain, ending one."""

from __future__ import annotations

from datetime import datetime

from pgbackups.domain.pitr import WalChain
from pgbackups.postgres import wal
from pgbackups.postgres.urls import database_of, user_of
from pgbackups.services import Services


def new_chain(
    database: str, identity: wal.ServerIdentity, start_lsn: int, now: datetime, url: str
) -> WalChain:
    """A chain starting at the segment of the fresh slot's position `start_lsn`."""
    start = start_lsn - start_lsn % identity.segment_size
    return WalChain.new(
        database,
        now,
        system_id=identity.system_id,
        timeline=identity.timeline,
        segment_size=identity.segment_size,
        server_version_num=identity.version_num,
        source_database=database_of(url),
        source_user=user_of(url),
        start_lsn=start,
        position=start,
        archived_lsn=start,
    )


def end_chain(services: Services, database: str, chain_id: str, reason: str) -> None:
    """A chain that will not grow any more (retention then treats it like a broken one)."""
    chain = services.pitr.get_chain(database, chain_id)
    if chain.broken_at is None:
        services.pitr.put_chain(
            chain.model_copy(update={"broken_at": services.clock(), "broken_reason": reason})
        )
