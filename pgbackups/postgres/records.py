"""Reading the commit timestamps of a WAL segment, so the recovery window ends at a
commit that the archive really holds.

The segment is read page by page: memory holds one page and at most one commit
record, whatever the segment's size. WAL comes from the user's server and is not
trusted: anything PostgreSQL cannot have written (a record shorter than its
header, a length past the record's end, an unknown block, a time out of range)
raises MalformedWal with what is wrong, never another exception.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from pgbackups.postgres.lsn import format_lsn
from pgbackups.postgres.wal import MalformedWal

PAGE_SIZE = 8192
_SHORT_HEADER = 24  # XLogPageHeaderData
_LONG_HEADER = 40  # XLogLongPageHeaderData, the segment's first page
_RECORD_HEADER = 24  # XLogRecord
_XLP_FIRST_IS_CONTRECORD = 0x0001
_XLP_LONG_HEADER = 0x0002
_RM_XLOG_ID = 0
_RM_XACT_ID = 1
_XLOG_SWITCH = 0x40
_XLOG_XACT_OPMASK = 0x70
_XACT_COMMITS = (0x00, 0x30)  # XLOG_XACT_COMMIT, XLOG_XACT_COMMIT_PREPARED
_XLR_MAX_BLOCK_ID = 32
_BLOCK_ID_DATA_SHORT = 255
_BLOCK_ID_DATA_LONG = 254
_BLOCK_ID_ORIGIN = 253
_BLOCK_ID_TOPLEVEL_XID = 252
# A commit record larger than this (a huge list of subtransactions or invalidations)
# is skipped rather than held in memory: the window may end a commit earlier.
MAX_COMMIT_RECORD = 4 * 1024**2
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _maxalign(value: int) -> int:
    return (value + 7) & ~7


def _pages(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """`chunks` cut into pages (the last one may be short)."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        while len(pending) >= PAGE_SIZE:
            yield bytes(pending[:PAGE_SIZE])
            del pending[:PAGE_SIZE]
    if pending:
        yield bytes(pending)


def _page_bodies(chunks: Iterable[bytes], start_lsn: int) -> Iterator[tuple[bytes, int]]:
    """Each page's record bytes (without its header), and for the first page where its
    first record starts. Stops at the first page whose address is not the expected one
    (stale bytes of a recycled file) or too short for its header."""
    for index, page in enumerate(_pages(chunks)):
        if len(page) < _SHORT_HEADER:
            return
        _, info, _, pageaddr, rem_len = struct.unpack_from("<HHIQI", page)
        if pageaddr != start_lsn + index * PAGE_SIZE:
            return
        header = _LONG_HEADER if info & _XLP_LONG_HEADER else _SHORT_HEADER
        if len(page) < header:
            return
        first = _maxalign(rem_len) if index == 0 and info & _XLP_FIRST_IS_CONTRECORD else 0
        yield page[header:], first


def commit_times(chunks: Iterable[bytes], start_lsn: int) -> list[datetime]:
    """The commit (and commit prepared) timestamps of the records that start in the
    segment whose bytes `chunks` gives, from its start at `start_lsn`.

    Only whole records are read: a commit split across two segments is skipped,
    which can only make the recovery window end a commit earlier.
    """
    where = f"WAL segment at {format_lsn(start_lsn)}"
    found: list[datetime] = []
    buffer = bytearray()
    skip = 0  # bytes of the record stream still to pass over
    for body, first in _page_bodies(chunks, start_lsn):
        skip += first
        if skip >= len(body):
            skip -= len(body)
            continue
        buffer += body[skip:]
        skip = 0
        while len(buffer) >= _RECORD_HEADER:
            total, _, _, info, rmid = struct.unpack_from("<IIQBB", buffer)
            if total == 0:
                return found  # zeros: the end of the log
            if total < _RECORD_HEADER:
                raise MalformedWal(f"{where}: a record claims {total} bytes, less than its header")
            if rmid == _RM_XLOG_ID and info & 0xF0 == _XLOG_SWITCH:
                return found  # the rest of the segment is unused
            if (
                rmid == _RM_XACT_ID
                and info & _XLOG_XACT_OPMASK in _XACT_COMMITS
                and total <= MAX_COMMIT_RECORD
            ):
                if len(buffer) < total:
                    break  # the rest of the record is on the next pages
                moment = commit_time(bytes(buffer[:total]), where)
                if moment is not None:
                    found.append(moment)
            aligned = _maxalign(total)
            if aligned > len(buffer):
                skip = aligned - len(buffer)
                buffer.clear()
                break
            del buffer[:aligned]
    return found


def commit_time(record: bytes, where: str = "WAL") -> datetime | None:
    """xl_xact_commit.xact_time, the first field of a commit record's main data (the
    record's last bytes); None when the record has block references (commits have none)."""
    position = _RECORD_HEADER
    while True:
        if position >= len(record):
            raise MalformedWal(f"{where}: a commit record ends before its main data")
        block_id = record[position]
        if block_id == _BLOCK_ID_DATA_SHORT:
            header_end, length = position + 2, _byte(record, position + 1, where)
            break
        if block_id == _BLOCK_ID_DATA_LONG:
            header_end = position + 5
            if header_end > len(record):
                raise MalformedWal(f"{where}: a commit record ends inside a data length")
            length = struct.unpack_from("<I", record, position + 1)[0]
            break
        if block_id == _BLOCK_ID_ORIGIN:
            position += 3
        elif block_id == _BLOCK_ID_TOPLEVEL_XID:
            position += 5
        elif block_id <= _XLR_MAX_BLOCK_ID:
            return None
        else:
            raise MalformedWal(f"{where}: a commit record has an unknown block id {block_id}")
    if length > len(record) - header_end:
        raise MalformedWal(
            f"{where}: a commit record's main data claims {length} bytes, "
            f"more than the {len(record) - header_end} the record has left"
        )
    if length < 8:
        raise MalformedWal(f"{where}: a commit record's main data is too short for its time")
    micros = struct.unpack_from("<q", record, len(record) - length)[0]
    try:
        return _PG_EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise MalformedWal(f"{where}: a commit time is out of range") from None


def _byte(record: bytes, position: int, where: str) -> int:
    if position >= len(record):
        raise MalformedWal(f"{where}: a commit record ends inside a data length")
    return record[position]
