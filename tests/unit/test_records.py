"""Commit timestamps read from WAL segments built byte by byte, and malformed WAL: every
crafted or truncated record gives MalformedWal with a reason, never another exception."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgbackups.postgres.records import PAGE_SIZE, commit_time, commit_times
from pgbackups.postgres.wal import MalformedWal

pytestmark = pytest.mark.unit

START = 0x3000000  # the segment's first LSN
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
COMMITTED = datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC)
XACT, XLOG = 1, 0


def record(rmid: int, info: int, body: bytes) -> bytes:
    """An XLogRecord: its 24-byte header (length, xid, prev, info, rmid, crc) then `body`."""
    return struct.pack("<IIQBBxxI", 24 + len(body), 7, 0, info, rmid, 0) + body


def commit(moment: datetime = COMMITTED, *, long: bool = False) -> bytes:
    micros = (moment - PG_EPOCH) // timedelta(microseconds=1)
    main = struct.pack("<q", micros) + b"\0" * 4
    header = bytes([254]) + struct.pack("<I", len(main)) if long else bytes([255, len(main)])
    return record(XACT, 0x00, header + main)


def other(size: int) -> bytes:
    """A record of another resource manager (heap), `size` bytes of body."""
    return record(10, 0x00, bytes([255, min(size, 255)]) + b"x" * size)


def segment(records: list[bytes], size: int = 4 * PAGE_SIZE) -> bytes:
    """The records laid out as PostgreSQL writes them: 8-byte aligned, across pages that
    each start with a header giving their address (the first one a long header)."""
    stream = b"".join(r + bytes(-len(r) % 8) for r in records)
    pages, position, index = [], 0, 0
    while len(pages) * PAGE_SIZE < size:
        header_size = 40 if index == 0 else 24
        info = 0x0002 if index == 0 else 0
        header = struct.pack("<HHIQI", 0xD118, info, 1, START + index * PAGE_SIZE, 0)
        header = header.ljust(header_size, b"\0")
        body = stream[position : position + PAGE_SIZE - header_size]
        position += len(body)
        pages.append((header + body).ljust(PAGE_SIZE, b"\0"))
        index += 1
    return b"".join(pages)


def chunks(data: bytes, size: int = 5000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_the_commit_times_of_a_segment_are_read_in_order() -> None:
    later = COMMITTED + timedelta(seconds=5)
    data = segment([other(100), commit(), other(9000 - 24), commit(later, long=True)])
    assert commit_times(chunks(data), START) == [COMMITTED, later]


def test_a_commit_split_across_pages_is_read() -> None:
    # The first page holds 8152 bytes of records: the commit starts 16 bytes before its end.
    data = segment([other(8152 - 16 - 32), commit()])
    assert commit_times(chunks(data, 777), START) == [COMMITTED]


def test_nothing_is_read_after_a_wal_switch_or_from_a_recycled_file() -> None:
    switched = segment([commit(), record(XLOG, 0x40, b""), commit(COMMITTED + timedelta(1))])
    assert commit_times(chunks(switched), START) == [COMMITTED]
    assert commit_times(chunks(segment([commit()])), START + 16 * 1024**2) == []


def test_main_data_longer_than_the_record_is_malformed_wal() -> None:
    crafted = record(XACT, 0x00, bytes([254]) + struct.pack("<I", 1_000_000) + b"\0" * 12)
    with pytest.raises(MalformedWal, match="main data claims 1000000 bytes"):
        commit_times(chunks(segment([crafted])), START)


def test_a_record_shorter_than_its_header_is_malformed_wal() -> None:
    short = struct.pack("<IIQBBxxI", 12, 7, 0, 0, XACT, 0)
    with pytest.raises(MalformedWal, match="claims 12 bytes, less than its header"):
        commit_times(chunks(segment([short])), START)


def test_a_commit_time_out_of_range_is_malformed_wal() -> None:
    crafted = record(XACT, 0x00, bytes([255, 12]) + struct.pack("<q", 2**63 - 1) + b"\0" * 4)
    with pytest.raises(MalformedWal, match="out of range"):
        commit_times(chunks(segment([crafted])), START)


def test_an_unknown_block_id_is_malformed_wal() -> None:
    with pytest.raises(MalformedWal, match="unknown block id 100"):
        commit_time(record(XACT, 0x00, bytes([100]) + b"\0" * 16))


BLOCK_IDS = st.sampled_from([0, 5, 32, 33, 100, 251, 252, 253, 254, 255])


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=64),
        st.builds(lambda b, rest: bytes([b]) + rest, BLOCK_IDS, st.binary(max_size=40)),
    ),
    info=st.sampled_from([0x00, 0x30, 0x10]),
    cut=st.integers(min_value=0, max_value=200),
)
def test_random_and_truncated_commit_records_give_malformed_wal_or_times(
    body: bytes, info: int, cut: int
) -> None:
    whole = record(XACT, info, body)
    for crafted in (whole, whole[: max(cut, 0)]):
        try:
            commit_time(crafted)
        except MalformedWal as error:
            assert str(error)


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.lists(st.sampled_from([commit(), other(40), other(3000)]), max_size=4),
    garbage=st.binary(min_size=1, max_size=600),
    cut=st.integers(min_value=0, max_value=4 * PAGE_SIZE),
)
def test_random_and_truncated_segments_give_malformed_wal_or_times(
    prefix: list[bytes], garbage: bytes, cut: int
) -> None:
    data = segment([*prefix, garbage])
    for crafted in (data, data[:cut]):
        try:
            found = commit_times(chunks(crafted), START)
        except MalformedWal as error:
            assert str(error).startswith("WAL segment at 0/3000000: ")
        else:
            assert all(isinstance(moment, datetime) for moment in found)
