"""The WAL receiver against a scripted server: segments handed over whole and spooled
(memory stays at a message whatever the segment size), acknowledged once stored, and
WAL the server sends out of place, or segment sizes PostgreSQL cannot have, refused."""

from __future__ import annotations

import gzip
import hashlib
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

import pytest

from pgbackups.postgres.wal import MalformedWal, Segment, WalReceiver, identify

pytestmark = pytest.mark.unit

MIB = 1024**2
MESSAGE = 128 * 1024  # what a walsender sends at most at a time


@dataclass
class Message:
    data_start: int
    payload: bytes


@dataclass
class ScriptedServer:
    """A replication connection and its cursor: sends `messages`, records feedback."""

    messages: list[Message]
    acknowledged: list[int] = field(default_factory=list)
    answers: list[tuple[Any, ...]] = field(default_factory=list)

    def cursor(self) -> ScriptedServer:
        return self

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def start_replication(self, **_: object) -> None:
        pass

    def read_message(self) -> Message | None:
        return self.messages.pop(0) if self.messages else None

    def send_feedback(self, *, flush_lsn: int, **_: object) -> None:
        self.acknowledged.append(flush_lsn)

    def execute(self, statement: str) -> None:
        pass

    def fetchone(self) -> tuple[Any, ...]:
        return self.answers.pop(0)

    def close(self) -> None:
        pass


def wal_bytes(start: int, size: int) -> bytes:
    """Bytes that say where they are (a byte out of place changes them)."""
    return bytes((start + i) * 7 % 251 for i in range(size))


def sent(start: int, size: int, message: int = MESSAGE) -> list[Message]:
    data = wal_bytes(start, size)
    return [Message(start + o, data[o : o + message]) for o in range(0, size, message)]


def receive(
    server: ScriptedServer, segment_size: int, start: int, end: int
) -> tuple[list[tuple[str, int, bool, str]], int]:
    """What the store got (name, start, partial, SHA-256 of the bytes) and the LSN acked."""
    stored = []

    def store(segment: Segment) -> None:
        digest = hashlib.sha256()
        for chunk in segment.chunks():
            digest.update(chunk)
        stored.append((segment.name, segment.start_lsn, segment.partial, digest.hexdigest()))

    receiver = WalReceiver(server, slot="s", timeline=1, segment_size=segment_size)  # type: ignore[arg-type]
    acked = receiver.stream(start, end, store, deadline=time.monotonic() + 60)
    return stored, acked


def test_complete_segments_then_the_partial_are_stored_and_only_complete_ones_acked() -> None:
    start, end = 4 * MIB, 6 * MIB + 300_000
    server = ScriptedServer(sent(start, end - start, message=100_000))
    stored, acked = receive(server, MIB, start, end)
    sha = [hashlib.sha256(wal_bytes(s, n)).hexdigest() for s, n in
           ((4 * MIB, MIB), (5 * MIB, MIB), (6 * MIB, 300_000))]  # fmt: skip
    assert stored == [
        ("000000010000000000000004", 4 * MIB, False, sha[0]),
        ("000000010000000000000005", 5 * MIB, False, sha[1]),
        ("000000010000000000000006", 6 * MIB, True, sha[2]),
    ]
    assert server.acknowledged == [5 * MIB, 6 * MIB] and acked == 6 * MIB


def test_a_segment_is_stored_as_postgresql_replays_it_padded_and_compressed() -> None:
    server = ScriptedServer(sent(0, 1000))
    bodies = []

    def store(segment: Segment) -> None:
        with segment.compressed(1) as body:
            data = body.file.read()
            assert body.sha256 == hashlib.sha256(data).hexdigest() and body.size == len(data)
            bodies.append(gzip.decompress(data))

    receiver = WalReceiver(server, slot="s", timeline=1, segment_size=MIB)  # type: ignore[arg-type]
    receiver.stream(0, 1000, store, deadline=time.monotonic() + 60)
    assert bodies == [wal_bytes(0, 1000) + bytes(MIB - 1000)]


def test_a_large_segment_is_received_and_stored_in_bounded_memory() -> None:
    size = 64 * MIB
    messages = iter(range(0, size, MESSAGE))
    payload = bytes(MESSAGE)

    class Stream(ScriptedServer):
        def read_message(self) -> Message | None:
            offset = next(messages, None)
            return None if offset is None else Message(offset, payload)

    server = Stream([])
    tracemalloc.start()
    try:
        stored, acked = receive(server, size, 0, size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(name, partial) for name, _, partial, _ in stored] == [
        ("000000010000000000000000", False)
    ]
    assert acked == size
    assert peak < 8 * MIB, f"{peak / MIB:.0f} MiB for a {size // MIB} MiB segment"


def test_wal_sent_out_of_place_is_malformed_wal_and_nothing_is_acked() -> None:
    messages = sent(0, 300_000, message=100_000)
    messages[1].data_start += 8
    server = ScriptedServer(messages)
    with pytest.raises(MalformedWal, match="sent WAL at 0/186A8, expected 0/186A0"):
        receive(server, MIB, 0, 300_000)
    assert server.acknowledged == []


@pytest.mark.parametrize("size", [0, 3 * MIB, 2 * 1024 * MIB, 512 * 1024])
def test_a_receiver_refuses_a_segment_size_postgresql_cannot_have(size: int) -> None:
    with pytest.raises(MalformedWal, match="power of two from 1 MB to 1 GB"):
        WalReceiver(ScriptedServer([]), slot="s", timeline=1, segment_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("segment_size", "position", "reason"),
    [
        ("24MB", "0/1000000", "power of two from 1 MB to 1 GB"),
        ("2GB", "0/1000000", "power of two from 1 MB to 1 GB"),
        ("16 parsecs", "0/1000000", "is not a size"),
        ("16MB", "0/1000000; DROP", "not an LSN"),
    ],
)
def test_a_server_identity_postgresql_cannot_have_is_malformed_wal(
    segment_size: str, position: str, reason: str
) -> None:
    server = ScriptedServer(
        [], answers=[("7123", 1, position, None), (segment_size,), ("180001",), ("replica",)]
    )
    with pytest.raises(MalformedWal, match=reason):
        identify(server)  # type: ignore[arg-type]


def test_a_server_identity_is_read() -> None:
    server = ScriptedServer(
        [], answers=[("7123", 2, "1/A0", None), ("256MB",), ("180001",), ("replica",)]
    )
    identity = identify(server)  # type: ignore[arg-type]
    assert (identity.timeline, identity.flushed_lsn, identity.segment_size) == (
        2, 0x1000000A0, 256 * MIB,
    )  # fmt: skip
    assert identity.major == 18
