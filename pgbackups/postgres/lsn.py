"""WAL positions (LSNs) and the segment files that hold them.

An LSN is a byte position in the server's write-ahead log, written `16/B374D848`
(two 32-bit halves in hex). The log is cut into segment files of one size per
cluster, fixed at initdb (`--wal-segsize`): a power of two from 1 MiB to 1 GiB.
A file's name says its timeline and which segment it is.
"""

from __future__ import annotations

import re

LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
MIN_SEGMENT_SIZE = 1024**2
MAX_SEGMENT_SIZE = 1024**3
_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3}


def parse_lsn(text: str) -> int:
    """`16/B374D848` → 0x16B374D848; ValueError for anything else."""
    if not LSN.match(text):
        raise ValueError(f"not an LSN: {text!r}")
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segment_size_problem(size: int) -> str | None:
    """Why `size` cannot be a WAL segment size, or None when PostgreSQL can have it."""
    if MIN_SEGMENT_SIZE <= size <= MAX_SEGMENT_SIZE and size & (size - 1) == 0:
        return None
    return (
        f"a WAL segment size of {size} bytes is not one PostgreSQL can have "
        "(a power of two from 1 MB to 1 GB)"
    )


def parse_segment_size(setting: str) -> int:
    """SHOW wal_segment_size's answer ('16MB') in bytes; ValueError with the reason when it
    is not a size PostgreSQL can have."""
    match = re.fullmatch(r"(\d{1,10})\s*(B|kB|MB|GB)", setting.strip())
    if not match:
        raise ValueError(f"wal_segment_size {setting[:40]!r} is not a size")
    size = int(match[1]) * _UNITS[match[2]]
    problem = segment_size_problem(size)
    if problem:
        raise ValueError(problem)
    return size


def segment_name(timeline: int, lsn: int, segment_size: int) -> str:
    """The file name PostgreSQL gives the segment holding `lsn` (e.g. 000000010000000000000003)."""
    segno = lsn // segment_size
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def segment_start(name: str, segment_size: int) -> int:
    """The LSN a segment file starts at."""
    per_id = 0x100000000 // segment_size
    return (int(name[8:16], 16) * per_id + int(name[16:24], 16)) * segment_size
