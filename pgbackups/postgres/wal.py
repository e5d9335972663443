"""Streaming WAL from a reserved physical replication slot, segment by segment.

`WalReceiver` speaks the replication protocol through psycopg2's
`PhysicalReplicationConnection`: it streams from a segment boundary up to the
position the server had flushed when the run started, hands each complete
segment (and, at the end, the current partial one) to the caller, and
acknowledges to the server (`send_feedback(flush_lsn=...)`) only the segments
the caller reports stored. pg_receivewal acknowledges what it wrote to local
disk, which loses WAL when a function dies between writing and uploading.

`commit_times` reads the commit timestamps of a segment, so the recovery window
ends at a commit that the archive really holds.
"""

from __future__ import annotations

import contextlib
import re
import select
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import psycopg2
from psycopg2.extras import PhysicalReplicationConnection

from pgbackups.postgres.urls import redact, registered_connection, scrub

CONNECT_TIMEOUT_SECONDS = 10
LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")


class ReplicationFailed(Exception):
    """The server refused a replication step; the message is fit for people (no secret)."""


class SlotLost(ReplicationFailed):
    """The slot is gone, invalidated, or no longer holds the WAL we need: the chain is broken."""


def parse_lsn(text: str) -> int:
    if not LSN.match(text):
        raise ValueError(f"not an LSN: {text!r}")
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segment_name(timeline: int, lsn: int, segment_size: int) -> str:
    """The file name PostgreSQL gives the segment holding `lsn` (e.g. 000000010000000000000003)."""
    segno = lsn // segment_size
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def segment_start(name: str, segment_size: int) -> int:
    """The LSN a segment file starts at."""
    per_id = 0x100000000 // segment_size
    return (int(name[8:16], 16) * per_id + int(name[16:24], 16)) * segment_size


def _size(setting: str) -> int:
    """'16MB' → bytes (SHOW's units)."""
    match = re.fullmatch(r"(\d+)\s*(B|kB|MB|GB)", setting.strip())
    if not match:
        raise ReplicationFailed(f"unexpected wal_segment_size {setting!r}")
    return int(match[1]) * {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3}[match[2]]


def _reason(error: Exception, url: str) -> str:
    return scrub(" ".join(str(error).split()), url)


def database_of(url: str) -> str:
    """The database a URL names (what a restore moves into a target), default `postgres`."""
    return unquote(urlsplit(url).path.lstrip("/")) or "postgres"


def user_of(url: str) -> str:
    """The role a URL connects as (no password)."""
    return unquote(urlsplit(url).username or "") or "postgres"


# -- the server: facts, slot ------------------------------------------------------------


@dataclass(frozen=True)
class ServerIdentity:
    system_id: str
    timeline: int
    flushed_lsn: int  # what the server has flushed: a run streams up to here
    segment_size: int
    version_num: int
    wal_level: str

    @property
    def major(self) -> int:
        return self.version_num // 10000


@dataclass(frozen=True)
class SlotPosition:
    restart_lsn: int | None  # None: the slot lost its WAL (invalidated)
    timeline: int | None


def _connect(url: str, **options: object) -> psycopg2.extensions.connection:
    """A connection as registered URLs get them (allowed parameters, files pinned, no
    cleartext password: `registered_connection`); the URL's own settings win."""
    target = registered_connection(url)
    defaults = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "pgbackups"}
    extra = {k: v for k, v in defaults.items() if k not in target.parameters}
    return psycopg2.connect(target.conninfo, password=target.password, **extra, **options)


def connect_replication(url: str) -> PhysicalReplicationConnection:
    """A physical replication connection; ReplicationFailed (no secret) when refused."""
    try:
        return _connect(url, connection_factory=PhysicalReplicationConnection)
    except (psycopg2.Error, ValueError) as error:
        raise ReplicationFailed(
            f"cannot open a replication connection to {redact(url)}: {_reason(error, url)}"
        ) from None


def identify(connection: PhysicalReplicationConnection) -> ServerIdentity:
    with connection.cursor() as cursor:
        cursor.execute("IDENTIFY_SYSTEM")
        system_id, timeline, xlogpos, _ = cursor.fetchone()
        cursor.execute("SHOW wal_segment_size")
        segment_size = _size(cursor.fetchone()[0])
        cursor.execute("SHOW server_version_num")
        version_num = int(cursor.fetchone()[0])
        cursor.execute("SHOW wal_level")
        wal_level = str(cursor.fetchone()[0])
    return ServerIdentity(
        system_id=str(system_id),
        timeline=int(timeline),
        flushed_lsn=parse_lsn(xlogpos),
        segment_size=segment_size,
        version_num=version_num,
        wal_level=wal_level,
    )


def read_slot(connection: PhysicalReplicationConnection, slot: str) -> SlotPosition | None:
    """The slot's restart position (servers ≥ 15; READ_REPLICATION_SLOT); None if no slot."""
    with connection.cursor() as cursor:
        cursor.execute(f"READ_REPLICATION_SLOT {slot}")
        slot_type, restart_lsn, timeline = cursor.fetchone()
    if slot_type is None:
        return None
    return SlotPosition(
        restart_lsn=parse_lsn(restart_lsn) if restart_lsn else None,
        timeline=int(timeline) if timeline is not None else None,
    )


def _sql(url: str, statement: str, *args: object) -> list[tuple[object, ...]]:
    """One SQL statement on a normal connection of the replication role."""
    try:
        connection = _connect(url)
    except (psycopg2.Error, ValueError) as error:
        raise ReplicationFailed(f"cannot connect to {redact(url)}: {_reason(error, url)}") from None
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement, args)
            return list(cursor.fetchall()) if cursor.description else []
    except psycopg2.Error as error:
        raise ReplicationFailed(_reason(error, url)) from None
    finally:
        connection.close()


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
    return parse_lsn(str(restart))


def drop_slot(url: str, slot: str) -> None:
    """Drop the slot if it exists (the server must not keep WAL for nobody)."""
    _sql(
        url,
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
        slot,
    )


# -- streaming ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """WAL bytes of one segment file, from its start; `partial` when not complete yet."""

    name: str
    start_lsn: int
    data: bytes
    segment_size: int

    @property
    def partial(self) -> bool:
        return len(self.data) < self.segment_size

    @property
    def end_lsn(self) -> int:
        return self.start_lsn + len(self.data)

    def padded(self) -> bytes:
        """The file as PostgreSQL replays it: a partial one is zero-padded to full size."""
        return self.data + bytes(self.segment_size - len(self.data))


StoreSegment = Callable[[Segment], None]


class WalReceiver:
    """One run of streaming from a slot, on an open replication connection."""

    def __init__(
        self,
        connection: PhysicalReplicationConnection,
        *,
        slot: str,
        timeline: int,
        segment_size: int,
        idle_timeout: float = 30.0,
    ) -> None:
        self._connection = connection
        self._slot = slot
        self._timeline = timeline
        self._segment_size = segment_size
        self._idle_timeout = idle_timeout

    def stream(
        self,
        start_lsn: int,
        end_lsn: int,
        store: StoreSegment,
        *,
        deadline: float,
    ) -> int:
        """Stream [start_lsn, end_lsn): each complete segment then the partial go to `store`.

        `start_lsn` is a segment boundary. After `store` returns for a complete
        segment, its end is acknowledged. Past `deadline` (time.monotonic()) it
        stops after the segment in hand, without the partial. Returns the LSN
        acknowledged (the start of the first segment not stored complete).
        """
        if start_lsn % self._segment_size:
            raise ValueError("streaming starts at a segment boundary")
        acknowledged = start_lsn
        buffer = bytearray()
        buffer_start = start_lsn
        cursor = self._connection.cursor()
        try:
            cursor.start_replication(
                slot_name=self._slot, start_lsn=start_lsn, timeline=self._timeline
            )
        except psycopg2.Error as error:
            raise _stream_error(error) from None
        try:
            for data_start, payload in self._messages(cursor, end_lsn, buffer_start):
                if data_start != buffer_start + len(buffer):
                    raise ReplicationFailed(
                        f"the server sent WAL at {format_lsn(data_start)}, expected "
                        f"{format_lsn(buffer_start + len(buffer))}"
                    )
                buffer += payload
                while len(buffer) >= self._segment_size:
                    segment = Segment(
                        segment_name(self._timeline, buffer_start, self._segment_size),
                        buffer_start,
                        bytes(buffer[: self._segment_size]),
                        self._segment_size,
                    )
                    store(segment)
                    del buffer[: self._segment_size]
                    buffer_start += self._segment_size
                    acknowledged = buffer_start
                    cursor.send_feedback(flush_lsn=acknowledged, reply=True, force=True)
                    if time.monotonic() > deadline:
                        return acknowledged
            if buffer and time.monotonic() <= deadline:
                store(
                    Segment(
                        segment_name(self._timeline, buffer_start, self._segment_size),
                        buffer_start,
                        bytes(buffer),
                        self._segment_size,
                    )
                )
            return acknowledged
        finally:
            with contextlib.suppress(psycopg2.Error):
                cursor.close()

    def _messages(
        self, cursor: psycopg2.extras.ReplicationCursor, end_lsn: int, start: int
    ) -> Iterator[tuple[int, bytes]]:
        received = start
        idle_since = time.monotonic()
        while received < end_lsn:
            try:
                message = cursor.read_message()
            except psycopg2.Error as error:
                raise _stream_error(error) from None
            if message is None:
                if time.monotonic() - idle_since > self._idle_timeout:
                    raise ReplicationFailed(
                        f"the server sent nothing for {self._idle_timeout:.0f} s at "
                        f"{format_lsn(received)} (expected up to {format_lsn(end_lsn)})"
                    )
                select.select([cursor], [], [], 1.0)
                continue
            idle_since = time.monotonic()
            payload = bytes(message.payload)
            yield message.data_start, payload
            received = message.data_start + len(payload)


def _stream_error(error: psycopg2.Error) -> ReplicationFailed:
    text = " ".join(str(error).split())
    if "has already been removed" in text or "invalidated" in text or "does not exist" in text:
        return SlotLost(text)
    return ReplicationFailed(text)


# -- reading commit timestamps -------------------------------------------------------------

_PAGE_SIZE = 8192
_XLP_LONG_HEADER = 0x0002
_XLP_FIRST_IS_CONTRECORD = 0x0001
_RM_XLOG_ID = 0
_RM_XACT_ID = 1
_XLOG_SWITCH = 0x40
_XLOG_XACT_OPMASK = 0x70
_XACT_COMMITS = (0x00, 0x30)  # XLOG_XACT_COMMIT, XLOG_XACT_COMMIT_PREPARED
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _maxalign(value: int) -> int:
    return (value + 7) & ~7


def _record_stream(data: bytes, start_lsn: int) -> tuple[bytes, int]:
    """The segment's record bytes without page headers, and where the first record starts.

    Stops at the first page whose address is not the expected one (stale bytes of
    a recycled file).
    """
    parts = []
    first = 0
    for offset in range(0, len(data) - 24 + 1, _PAGE_SIZE):
        _, info, _, pageaddr, rem_len = struct.unpack_from("<HHIQI", data, offset)
        if pageaddr != start_lsn + offset:
            break
        header = 40 if info & _XLP_LONG_HEADER else 24
        if offset == 0 and info & _XLP_FIRST_IS_CONTRECORD:
            first = _maxalign(rem_len)
        parts.append(data[offset + header : offset + _PAGE_SIZE])
    return b"".join(parts), first


def commit_times(data: bytes, start_lsn: int) -> list[datetime]:
    """The commit (and commit prepared) timestamps of the records that start in this segment.

    Only whole records are read: a commit split across two segments is skipped,
    which can only make the recovery window end a commit earlier.
    """
    stream, offset = _record_stream(data, start_lsn)
    found = []
    while offset + 24 <= len(stream):
        total, _, _, info, rmid = struct.unpack_from("<IIQBB", stream, offset)
        if total < 24 or offset + total > len(stream):
            break
        if rmid == _RM_XLOG_ID and info & 0xF0 == _XLOG_SWITCH:
            break
        if rmid == _RM_XACT_ID and info & _XLOG_XACT_OPMASK in _XACT_COMMITS:
            moment = _commit_time(stream[offset : offset + total])
            if moment is not None:
                found.append(moment)
        offset += _maxalign(total)
    return found


def _commit_time(record: bytes) -> datetime | None:
    """xl_xact_commit.xact_time, the first field of the main data (the record's last bytes)."""
    position = 24
    while position < len(record):
        block_id = record[position]
        if block_id == 255:  # XLR_BLOCK_ID_DATA_SHORT
            length = record[position + 1]
            break
        if block_id == 254:  # XLR_BLOCK_ID_DATA_LONG
            length = struct.unpack_from("<I", record, position + 1)[0]
            break
        if block_id == 253:  # XLR_BLOCK_ID_ORIGIN
            position += 3
        elif block_id == 252:  # XLR_BLOCK_ID_TOPLEVEL_XID
            position += 5
        else:  # block references: commits have none
            return None
    else:
        return None
    if length < 8:
        return None
    micros = struct.unpack_from("<q", record, len(record) - length)[0]
    return _PG_EPOCH + timedelta(microseconds=micros)
