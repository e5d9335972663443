"""The replication slot a chain streams from: created reserving WAL, read, dropped.

The slot makes the server keep the WAL the archive does not hold yet; these are
SQL statements on a normal connection of the replication role, except
`read_slot` (READ_REPLICATION_SLOT, servers 15+) for roles without SQL access.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2
from psycopg2.extras import PhysicalReplicationConnection

from pgbackups.postgres.lsn import parse_lsn
from pgbackups.postgres.wal import MalformedWal, ReplicationFailed, SlotLost, connect, reason


@dataclass(frozen=True)
class SlotPosition:
    restart_lsn: int | None  # None: the slot lost its WAL (invalidated)
    timeline: int | None


def _sql(url: str, statement: str, *args: object) -> list[tuple[object, ...]]:
    """One SQL statement on a normal connection of the replication role."""
    connection = connect(url)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement, args)
            return list(cursor.fetchall()) if cursor.description else []
    except psycopg2.Error as error:
        raise ReplicationFailed(reason(error, url)) from None
    finally:
        connection.close()


def _lsn(text: object) -> int:
    try:
        return parse_lsn(str(text))
    except ValueError as error:
        raise MalformedWal(f"the server gave a slot position that is {error}") from None


def wal_level(url: str) -> str | None:
    """The server's wal_level over a normal connection; None when that is refused too."""
    try:
        return str(_sql(url, "SHOW wal_level")[0][0])
    except ReplicationFailed:
        return None


def create_slot(url: str, slot: str) -> int:
    """Create the slot reserving WAL at once (a REPLICATION role may); its restart LSN.

    `pg_receivewal --create-slot` would leave restart_lsn NULL until the first stream.
    """
    _sql(url, "SELECT pg_create_physical_replication_slot(%s, true)", slot)
    return slot_restart_lsn(url, slot)


def slot_restart_lsn(url: str, slot: str) -> int:
    """The slot's restart LSN; SlotLost when it is gone or lost its WAL (wal_status `lost`)."""
    rows = _sql(
        url,
        "SELECT restart_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = %s",
        slot,
    )
    if not rows:
        raise SlotLost(f"the replication slot {slot} no longer exists")
    restart, status = rows[0]
    if restart is None or status == "lost":
        raise SlotLost(f"the replication slot {slot} was invalidated (max_slot_wal_keep_size)")
    return _lsn(restart)


def read_slot(connection: PhysicalReplicationConnection, slot: str) -> SlotPosition | None:
    """The slot's restart position (servers ≥ 15; READ_REPLICATION_SLOT); None if no slot."""
    with connection.cursor() as cursor:
        cursor.execute(f"READ_REPLICATION_SLOT {slot}")
        slot_type, restart_lsn, timeline = cursor.fetchone()
    if slot_type is None:
        return None
    return SlotPosition(
        restart_lsn=_lsn(restart_lsn) if restart_lsn else None,
        timeline=int(timeline) if timeline is not None else None,
    )


def drop_slot(url: str, slot: str) -> None:
    """Drop the slot if it exists (the server must not keep WAL for nobody)."""
    _sql(
        url,
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
        slot,
    )
