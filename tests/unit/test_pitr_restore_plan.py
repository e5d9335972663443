"""Which WAL files a restore plan lists: the catalog's records only, contiguous from the
base backup's start to what the target needs (no server, no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgbackups.domain.errors import WalMissing
from pgbackups.domain.pitr import BaseBackup, WalChain, WalFile
from pgbackups.domain.recovery import RestorePoint
from pgbackups.postgres.wal import segment_name
from pgbackups.usecases.pitr.restore_plan import wal_to_replay

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SEG = 16 * 1024 * 1024
CHAIN = WalChain(
    id="01JCHAIN", database="shop", system_id="1", timeline=1, segment_size=SEG,
    server_version_num=180006, source_database="shop", source_user="postgres",
    started_at=T0, start_lsn=SEG, position=5 * SEG, archived_lsn=5 * SEG + 100,
    last_commit_at=T0 + timedelta(minutes=5),
)  # fmt: skip
# Its WAL runs from segment 1 to 5 (`archived`), 1 to 2 for the base backup.
BASE = BaseBackup(
    id="01JBASE", database="shop", chain_id=CHAIN.id, started_at=T0, finished_at=T0,
    start_lsn=SEG + 40, end_lsn=2 * SEG + 8, timeline=1, size=1, sha256="0" * 64,
    server_version_num=180006,
)  # fmt: skip


def record(segment: int, *, commit_minute: int | None = None, partial: bool = False) -> WalFile:
    name = segment_name(1, segment * SEG, SEG)
    return WalFile(
        database="shop", chain_id=CHAIN.id, name=name, partial=partial,
        key=CHAIN.wal_key(name, partial_at=T0 if partial else None), size=10,
        sha256=f"{segment:064x}",
        start_lsn=segment * SEG, end_lsn=segment * SEG + (100 if partial else SEG),
        last_commit_at=None if commit_minute is None else T0 + timedelta(minutes=commit_minute),
        archived_at=T0,
    )  # fmt: skip


def archive() -> list[WalFile]:
    """Segments 1 to 4 complete (commits in 2 and 4), then 5 partial (a commit)."""
    return [
        record(1),
        record(2, commit_minute=1),
        record(3),
        record(4, commit_minute=3),
        record(5, commit_minute=5, partial=True),
    ]


def names(files: list[WalFile]) -> list[int]:
    return [f.start_lsn // SEG for f in files]


def test_latest_replays_every_file_to_the_partial_one() -> None:
    assert names(wal_to_replay(RestorePoint(CHAIN, BASE, None), archive())) == [1, 2, 3, 4, 5]


def test_a_time_ends_at_the_file_of_the_first_commit_after_it() -> None:
    at = T0 + timedelta(minutes=2)
    assert names(wal_to_replay(RestorePoint(CHAIN, BASE, at), archive())) == [1, 2, 3, 4]
    # A commit at the very moment is replayed: the stop is the next one.
    at = T0 + timedelta(minutes=3)
    assert names(wal_to_replay(RestorePoint(CHAIN, BASE, at), archive())) == [1, 2, 3, 4, 5]


def test_a_hole_before_what_replay_needs_names_the_first_missing_file() -> None:
    files = [f for f in archive() if f.start_lsn != 3 * SEG]
    with pytest.raises(WalMissing, match=segment_name(1, 3 * SEG, SEG)) as missing:
        wal_to_replay(RestorePoint(CHAIN, BASE, None), files)
    assert missing.value.details == {"segment": segment_name(1, 3 * SEG, SEG)}
    # The base backup's own WAL is needed whatever the target.
    files = [f for f in archive() if f.start_lsn != 2 * SEG]
    with pytest.raises(WalMissing, match=segment_name(1, 2 * SEG, SEG)):
        wal_to_replay(RestorePoint(CHAIN, BASE, T0 + timedelta(seconds=1)), files)


def test_a_hole_after_what_the_time_needs_does_not_matter() -> None:
    files = [f for f in archive() if f.start_lsn != 3 * SEG]
    at = T0 + timedelta(seconds=30)
    assert names(wal_to_replay(RestorePoint(CHAIN, BASE, at), files)) == [1, 2]


def test_the_stored_wal_must_reach_the_chains_end() -> None:
    """The newest records lost: `latest` would stop short of what was acknowledged."""
    with pytest.raises(WalMissing, match=segment_name(1, 5 * SEG, SEG)):
        wal_to_replay(RestorePoint(CHAIN, BASE, None), archive()[:-1])


def test_records_that_are_not_what_the_capture_writes_do_not_count() -> None:
    files = archive()
    forged = [
        files[2].model_copy(update={"name": "/tmp/pwn0000000100000099"}),
        files[2].model_copy(
            update={"key": "databases/other/pitr/x/wal/000000010000000000000003.gz"}
        ),
        files[2].model_copy(update={"start_lsn": 7 * SEG}),
        files[2].model_copy(update={"partial": True}),  # the key of a complete file
        record(3, partial=True).model_copy(update={"partial": False}),
    ]
    for bad in forged:
        with pytest.raises(WalMissing, match=segment_name(1, 3 * SEG, SEG)):
            wal_to_replay(RestorePoint(CHAIN, BASE, None), [*files[:2], bad, *files[3:]])


def test_a_partial_file_ends_the_plan() -> None:
    """A partial file followed by others is a file whose end was never stored."""
    files = archive()
    files[2] = record(3, partial=True)
    with pytest.raises(WalMissing, match=segment_name(1, 3 * SEG, SEG)):
        wal_to_replay(RestorePoint(CHAIN, BASE, None), files)
