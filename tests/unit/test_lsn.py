"""WAL positions and segment files: one parser, names and starts, the sizes PostgreSQL has."""

from __future__ import annotations

import pytest

from pgbackups.postgres.lsn import (
    format_lsn,
    parse_lsn,
    parse_segment_size,
    segment_name,
    segment_size_problem,
    segment_start,
)

pytestmark = pytest.mark.unit

SEG = 16 * 1024**2


def test_lsn_and_segment_names_round_trip() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert format_lsn(parse_lsn("0/1700000")) == "0/1700000"
    assert segment_name(1, 0x16B374D848, SEG) == "0000000100000016000000B3"
    assert segment_start("0000000100000016000000B3", SEG) == 0x16B3000000
    with pytest.raises(ValueError):
        parse_lsn("16/B374D848; DROP")


@pytest.mark.parametrize("size", [1024**2, 512 * 1024**2, 1024**3])
def test_segment_names_and_starts_agree_at_every_size(size: int) -> None:
    lsn = 5 * 0x100000000 + 3 * size + 17
    name = segment_name(2, lsn, size)
    assert name.startswith("00000002")
    assert segment_start(name, size) == lsn - 17


@pytest.mark.parametrize(
    ("setting", "size"),
    [("1MB", 1024**2), ("16MB", 16 * 1024**2), ("256MB", 256 * 1024**2), ("1GB", 1024**3)],
)
def test_the_sizes_postgresql_can_have_are_read(setting: str, size: int) -> None:
    assert parse_segment_size(setting) == size
    assert segment_size_problem(size) is None


@pytest.mark.parametrize("setting", ["2GB", "512kB", "24MB", "0MB", "16 parsecs", "9" * 40 + "GB"])
def test_a_segment_size_postgresql_cannot_have_is_refused_with_the_reason(setting: str) -> None:
    with pytest.raises(ValueError, match=r"segment size|not a size"):
        parse_segment_size(setting)


def test_the_reason_says_what_sizes_are_possible() -> None:
    assert "a power of two from 1 MB to 1 GB" in (segment_size_problem(24 * 1024**2) or "")
