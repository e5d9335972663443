"""The run lifecycle every run shares (models.Run): the reaper's rule on a backup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pgbackups.domain.models import BackupRecord

T0 = datetime(2026, 1, 15, 1, 0, tzinfo=UTC)
LAMBDA_TIMEOUT = timedelta(minutes=15)


def test_a_backup_never_started_is_given_up_after_the_grace() -> None:
    scheduled = BackupRecord.new("shop", "periodic", T0)

    assert scheduled.abandoned_reason(T0 + timedelta(minutes=29)) is None
    assert scheduled.abandoned_reason(T0 + timedelta(minutes=31)) == (
        "the backup function never started this backup"
    )


def test_a_running_backup_without_a_recorded_deadline_has_the_longest_run() -> None:
    """Records started before deadlines were recorded ran in the backup function."""
    running = BackupRecord.new("shop", "manual", T0).model_copy(
        update={"status": "running", "started_at": T0, "runner": "lambda"}
    )

    assert running.abandoned_reason(T0 + timedelta(hours=5)) is None, "no deadline known"
    within = T0 + LAMBDA_TIMEOUT + timedelta(minutes=4)
    assert running.abandoned_reason(within, longest_run=LAMBDA_TIMEOUT) is None
    late = T0 + LAMBDA_TIMEOUT + timedelta(minutes=6)
    assert running.abandoned_reason(late, longest_run=LAMBDA_TIMEOUT) == (
        "timed out: the lambda run stopped without finishing (no result 21 minutes after "
        "it started)"
    )


def test_a_finished_backup_is_never_given_up() -> None:
    done = BackupRecord.new("shop", "manual", T0).model_copy(
        update={"status": "done", "started_at": T0, "finished_at": T0, "deadline_at": T0}
    )

    assert done.abandoned_reason(T0 + timedelta(days=3), longest_run=LAMBDA_TIMEOUT) is None
    assert not done.active


def test_a_failed_run_keeps_its_reason_and_time() -> None:
    failed = BackupRecord.new("shop", "manual", T0).failed("pg_dump: refused", T0)

    assert (failed.status, failed.error, failed.finished_at) == ("error", "pg_dump: refused", T0)
    assert isinstance(failed, BackupRecord)
