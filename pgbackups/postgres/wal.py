"""Streaming WAL from a reserved physical replication slot, segment by segment.

`WalReceiver` speaks the replication protocol through psycopg2's
`PhysicalReplicationConnection`: it streams from a segment boundary up to the
position the server had flushed when the run started, hands each complete
segment (and, at the end, the current partial one) to the caller, and
acknowledges to the server (`send_feedback(flush_lsn=...)`) only the segments
the caller reports stored. pg_receivewal acknowledges what it wrote to local
disk, which loses WAL when a function dies between writing and uploading.

A segment can be 1 GiB and the server is not trusted to be truthful about its
size, so segments never sit in memory: the receiver spools each one to a
temporary file and the caller reads it back in chunks (memory stays at one
chunk whatever the segment size; the disk holds the segment).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import select
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

import psycopg2
from psycopg2.extras import PhysicalReplicationConnection, ReplicationCursor

from pgbackups.postgres.lsn import (
    format_lsn,
    parse_lsn,
    parse_segment_size,
    segment_name,
    segment_size_problem,
)
from pgbackups.postgres.urls import registered_connection, scrub

CONNECT_TIMEOUT_SECONDS = 10
CHUNK_SIZE = 1024**2  # what a segment is read back in


class ReplicationFailed(Exception):
    """The server refused a replication step; the message is fit for people (no secret)."""


class SlotLost(ReplicationFailed):
    """The slot is gone, invalidated, or no longer holds the WAL we need: the chain is broken."""


class MalformedWal(ReplicationFailed):
    """The server sent WAL, or facts about it, that PostgreSQL cannot have written; the
    message says what is wrong."""


def reason(error: Exception, url: str) -> str:
    """psycopg2's message on one line, with nothing of the URL's password."""
    return scrub(" ".join(str(error).split()), url)


def connect(
    url: str, refused: str = "cannot connect to", **options: object
) -> psycopg2.extensions.connection:
    """A connection as registered URLs get them (allowed parameters, files pinned, no
    cleartext password: `registered_connection`); the URL's own settings win.
    ReplicationFailed `<refused> <target>: <why>` (no secret) when refused."""
    target = registered_connection(url)
    defaults = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "pgbackups"}
    extra = {k: v for k, v in defaults.items() if k not in target.parameters}
    try:
        return psycopg2.connect(target.conninfo, password=target.password, **extra, **options)
    except (psycopg2.Error, ValueError) as error:
        raise ReplicationFailed(target.failure(refused, error)) from None


def connect_replication(url: str) -> PhysicalReplicationConnection:
    """A physical replication connection; ReplicationFailed (no secret) when refused."""
    connection: PhysicalReplicationConnection = connect(
        url,
        "cannot open a replication connection to",
        connection_factory=PhysicalReplicationConnection,
    )
    return connection


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


def identify(connection: PhysicalReplicationConnection) -> ServerIdentity:
    """The server's identity and WAL facts; MalformedWal when they cannot be PostgreSQL's."""
    with connection.cursor() as cursor:
        cursor.execute("IDENTIFY_SYSTEM")
        system_id, timeline, xlogpos, _ = cursor.fetchone()
        cursor.execute("SHOW wal_segment_size")
        segment_size = cursor.fetchone()[0]
        cursor.execute("SHOW server_version_num")
        version_num = cursor.fetchone()[0]
        cursor.execute("SHOW wal_level")
        wal_level = str(cursor.fetchone()[0])
    try:
        return ServerIdentity(
            system_id=str(system_id),
            timeline=int(timeline),
            flushed_lsn=parse_lsn(str(xlogpos)),
            segment_size=parse_segment_size(str(segment_size)),
            version_num=int(version_num),
            wal_level=wal_level,
        )
    except ValueError as error:
        raise MalformedWal(f"the server's identity is not PostgreSQL's: {error}") from None


# -- segments -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompressedSegment:
    """A segment file gzip-compressed into a temporary file, read from its start."""

    file: IO[bytes]
    sha256: str
    size: int


@dataclass
class Segment:
    """WAL bytes of one segment file, from its start, spooled to a temporary file;
    `partial` when not complete yet."""

    name: str
    start_lsn: int
    segment_size: int
    spool: IO[bytes] = field(repr=False)
    size: int = 0

    @property
    def partial(self) -> bool:
        return self.size < self.segment_size

    @property
    def end_lsn(self) -> int:
        return self.start_lsn + self.size

    def chunks(self, *, padded: bool = False) -> Iterator[bytes]:
        """The bytes received, in chunks; `padded`: then zeros up to the full size, the
        file as PostgreSQL replays it."""
        self.spool.seek(0)
        while chunk := self.spool.read(CHUNK_SIZE):
            yield chunk
        missing = self.segment_size - self.size if padded else 0
        zeros = bytes(min(missing, CHUNK_SIZE))
        while missing > 0:
            yield zeros[:missing]
            missing -= len(zeros)

    @contextlib.contextmanager
    def compressed(self, level: int) -> Iterator[CompressedSegment]:
        """The padded file gzip-compressed (no timestamp: the same bytes give the same
        object), in a temporary file removed on exit."""
        digest = hashlib.sha256()
        with tempfile.TemporaryFile() as file:
            with gzip.GzipFile(fileobj=file, mode="wb", compresslevel=level, mtime=0) as out:
                for chunk in self.chunks(padded=True):
                    out.write(chunk)
            size = file.tell()
            file.seek(0)
            while chunk := file.read(CHUNK_SIZE):
                digest.update(chunk)
            file.seek(0)
            yield CompressedSegment(file, digest.hexdigest(), size)


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
        problem = segment_size_problem(segment_size)
        if problem:
            raise MalformedWal(problem)
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
        MalformedWal when the server sends WAL out of place.
        """
        if start_lsn % self._segment_size:
            raise ValueError("streaming starts at a segment boundary")
        acknowledged = start_lsn
        cursor = self._connection.cursor()
        try:
            cursor.start_replication(
                slot_name=self._slot, start_lsn=start_lsn, timeline=self._timeline
            )
        except psycopg2.Error as error:
            raise _stream_error(error) from None
        segment = self._segment(start_lsn)
        try:
            for data_start, payload in self._messages(cursor, end_lsn, start_lsn):
                if data_start != segment.end_lsn:
                    raise MalformedWal(
                        f"the server sent WAL at {format_lsn(data_start)}, expected "
                        f"{format_lsn(segment.end_lsn)}"
                    )
                view = memoryview(payload)
                while view:
                    taken = view[: self._segment_size - segment.size]
                    segment.spool.write(taken)
                    segment.size += len(taken)
                    view = view[len(taken) :]
                    if segment.partial:
                        continue
                    store(segment)
                    segment.spool.close()
                    acknowledged = segment.end_lsn
                    cursor.send_feedback(flush_lsn=acknowledged, reply=True, force=True)
                    if time.monotonic() > deadline:
                        return acknowledged
                    segment = self._segment(acknowledged)
            if segment.size and time.monotonic() <= deadline:
                store(segment)
            return acknowledged
        finally:
            segment.spool.close()
            with contextlib.suppress(psycopg2.Error):
                cursor.close()

    def _segment(self, start: int) -> Segment:
        return Segment(
            segment_name(self._timeline, start, self._segment_size),
            start,
            self._segment_size,
            tempfile.TemporaryFile(),
        )

    def _messages(
        self, cursor: ReplicationCursor, end_lsn: int, start: int
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
            payload = message.payload
            yield message.data_start, payload
            received = message.data_start + len(payload)


def _stream_error(error: psycopg2.Error) -> ReplicationFailed:
    text = " ".join(str(error).split())
    if "has already been removed" in text or "invalidated" in text or "does not exist" in text:
        return SlotLost(text)
    return ReplicationFailed(text)
