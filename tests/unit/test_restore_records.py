"""What a restore that stopped midway says of its target (RestoreRecord.interrupted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgbackups.domain.restores import RestoreCounts, RestoreRecord

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 15, 1, 0, tzinfo=UTC)
TARGET = "db.example.com:5432/shop_copy"


def running(backup_id: str | None, restored: int, total: int | None) -> RestoreRecord:
    record = RestoreRecord.new(
        "shop", backup_id, TARGET, T0, tables=[], schemas=[], clean=True,
        target_time=None if backup_id else T0 - timedelta(hours=1),
    )  # fmt: skip
    return record.model_copy(
        update={
            "status": "running",
            "started_at": T0,
            "progress": RestoreCounts(restored=restored, total=total),
        }
    )


def test_a_backup_restore_counts_the_archive_entries_restored() -> None:
    failed = running("01KB40000000000000000000BK", 3, 12).interrupted("killed", T0)

    assert (failed.status, failed.error) == ("error", "killed")
    assert failed.warnings == [
        f"the target may be partial: 3 of 12 entries of the archive were restored into "
        f"{TARGET} before the restore stopped; restore again (clean) to redo it"
    ]


def test_a_point_in_time_says_the_recovered_database_was_being_moved() -> None:
    failed = running(None, 7, None).interrupted("the task was stopped", T0)

    assert failed.warnings == [
        f"the target may be partial: 7 entries of the recovered database were moved into "
        f"{TARGET} before the restore stopped; restore again (clean) to redo it"
    ]


def test_a_point_in_time_stopped_while_recovering_counts_no_entries() -> None:
    """The progress then counts WAL files fetched, not anything moved into the target."""
    failed = running(None, 3, 10).interrupted("timed out", T0)

    (warning,) = failed.warnings
    assert warning == (
        f"the target may be partial: part of the recovered database may have been moved "
        f"into {TARGET} before the restore stopped; restore again (clean) to redo it"
    )
