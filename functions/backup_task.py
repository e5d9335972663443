"""Backup task (ECS Fargate): the backup function's work, with the container's deadline.

Started by task_bootstrap.py once the function's code and layers are unpacked.
The request comes in PGBACKUPS_BACKUP_REQUEST (`{"database", "backup_id", "kind"}`,
set by the Fargate runner's RunTask override: a logical backup, a base backup, a restore
or a restore drill); the deadline is the task's own
(BACKUP_TASK_TIMEOUT_SECONDS), counted from the bootstrap's start. Exit code 0
when the backup was taken or had nothing to do, 1 when it ended in `error`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from pgbackups.domain.models import BackupRequest
from pgbackups.observability import record_backup_metrics, record_base_backup_metrics
from pgbackups.postgres.pgtools import launch
from pgbackups.postgres.restore import RestoreFailed
from pgbackups.settings import Settings
from pgbackups.usecases.backup import run_backup
from pgbackups.usecases.pitr import run_base_backup
from pgbackups.usecases.restores import run_restore
from pgbackups.usecases.verifications import run_verification
from pgbackups.wiring import build_services

REQUEST_VARIABLE = "PGBACKUPS_BACKUP_REQUEST"

logger = Logger()
metrics = Metrics()


class StoppableLauncher:
    """Launches pg_dump and remembers it, so that ECS's SIGTERM (StopTask, a
    scale-in) stops the dump: the backup then records `error` and aborts its
    upload within ECS's 30 s stop timeout instead of being killed mid-way."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def __call__(self, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = launch(argv, env)
        self.processes.append(process)
        return process

    def stop(self, signum: int, frame: Any) -> None:
        logger.warning("the task was asked to stop; stopping pg_dump")
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)


def stop_restore(signum: int, frame: Any) -> None:
    """ECS's SIGTERM during a restore: pg_restore is stopped where it is (the restore's
    own error handling kills it), the restore records `error` (its target may be
    partial) and its secret is deleted, within ECS's 30 s stop timeout."""
    logger.warning("the task was asked to stop; stopping the restore")
    raise RestoreFailed("the task was stopped (StopTask, scale-in) before the restore finished")


def stop_drill(signum: int, frame: Any) -> None:
    """ECS's SIGTERM during a drill: the drill stops where it is (its throwaway server
    is stopped and its files removed on the way out) and records `failed`."""
    logger.warning("the task was asked to stop; stopping the drill")
    raise RestoreFailed("the task was stopped (StopTask, scale-in) before the drill finished")


def main(*, started_monotonic: float | None = None) -> int:
    started = time.monotonic() if started_monotonic is None else started_monotonic
    settings = Settings.from_env()
    request = BackupRequest.model_validate_json(os.environ[REQUEST_VARIABLE])
    services = build_services(settings)
    launcher = StoppableLauncher()
    services.launcher = launcher
    signal.signal(signal.SIGTERM, launcher.stop)
    logger.append_keys(backup_id=request.backup_id, database=request.database)
    seconds_left = settings.task_timeout_seconds - (time.monotonic() - started)
    status = "unchanged"
    if request.kind == "restore":
        signal.signal(signal.SIGTERM, stop_restore)
        restore = run_restore(services, request, seconds_left=seconds_left, runner="fargate")
        if restore is not None:
            status = restore.status
    elif request.kind == "verify":
        signal.signal(signal.SIGTERM, stop_drill)
        drill = run_verification(services, request, seconds_left=seconds_left, runner="fargate")
        if drill is not None:
            status = drill.status
    elif request.kind == "base":
        result = run_base_backup(services, request, seconds_left=seconds_left, runner="fargate")
        if result is not None:
            record_base_backup_metrics(metrics, request.database, result)
            status = result.status
    else:
        record = run_backup(services, request, seconds_left=seconds_left, runner="fargate")
        if record is not None:
            record_backup_metrics(metrics, record)
            status = record.status
    if status == "unchanged":
        metrics.add_metric(name="DuplicateInvocations", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    print(json.dumps({"backup_id": request.backup_id, "status": status}), flush=True)
    return 1 if status in ("error", "failed") else 0


if __name__ == "__main__":
    sys.exit(main())
