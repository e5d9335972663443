"""Which runner takes a backup: the Lambda function or the ECS Fargate task.

Both run the same `run_backup`; they differ only in their deadline (Lambda's is
the function's timeout, at most 15 minutes) and their price. A database's
`runner` setting is `lambda`, `fargate` or `auto` (the default); `auto` moves a
database to Fargate once its backups no longer fit comfortably in Lambda.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgbackups.domain.models import TIMED_OUT, BackupRecord, RunnerName, RunnerSetting

# A Lambda backup that took more than this share of the limit is too close to it:
# the database grows, and the next one may not finish.
LAMBDA_SHARE = 0.5


class RunnerFailed(RuntimeError):
    """A runner could not start a backup; the message is fit for the record's `error`."""


@dataclass(frozen=True)
class RunnerLimits:
    """What `auto` weighs: Lambda's limit and the size above which Fargate is chosen.

    `fargate_available` is False where the deployment has no Fargate runner (no
    subnets to run tasks in): `auto` then always picks Lambda.
    """

    lambda_timeout_seconds: float
    fargate_size_threshold_bytes: int
    fargate_available: bool = True


def choose_runner(
    setting: RunnerSetting,
    recent: list[BackupRecord],
    limits: RunnerLimits,
) -> tuple[RunnerName, str]:
    """The runner for a database's next backup, and why (for the logs).

    `recent` is the database's backups, newest first (a handful is enough). `auto`
    picks Fargate when the newest finished backup timed out in Lambda, when the
    last successful backup took more than half of Lambda's limit, or when the
    database (as the last backup measured it) is larger than the threshold.
    """
    if setting != "auto":
        return setting, f"the database's runner is {setting}"
    if not limits.fargate_available:
        return "lambda", "no Fargate runner is configured"
    finished = [r for r in recent if r.status in ("done", "error")]
    if finished:
        newest = finished[0]
        if (
            newest.status == "error"
            and newest.runner in (None, "lambda")
            and (newest.error or "").startswith(TIMED_OUT)
        ):
            return "fargate", "the last backup timed out in Lambda"
    last_done = next((r for r in finished if r.status == "done"), None)
    if last_done is not None:
        duration = _duration_seconds(last_done)
        half = limits.lambda_timeout_seconds * LAMBDA_SHARE
        if last_done.runner in (None, "lambda") and duration is not None and duration > half:
            return "fargate", f"the last backup took {duration:.0f} s, over half of Lambda's limit"
        if last_done.runner == "fargate" and duration is not None and duration > half:
            return "fargate", f"the last backup took {duration:.0f} s on Fargate"
        size = last_done.database_size
        if size is not None and size > limits.fargate_size_threshold_bytes:
            return "fargate", f"the database holds {size} bytes, over the threshold"
    return "lambda", "the database's backups fit in Lambda"


def _duration_seconds(record: BackupRecord) -> float | None:
    if record.started_at is None or record.finished_at is None:
        return None
    return (record.finished_at - record.started_at).total_seconds()
