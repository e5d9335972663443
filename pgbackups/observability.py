"""Metrics every entry point records the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from pgbackups.domain.models import BackupRecord

if TYPE_CHECKING:
    from pgbackups.usecases.pitr import BaseBackupResult


def record_backup_metrics(metrics: Metrics, record: BackupRecord) -> None:
    """Duration, bytes and success/failure of a finished backup, per database."""
    metrics.add_dimension(name="database", value=record.database)
    succeeded = record.status == "done"
    metrics.add_metric(name="BackupSucceeded", unit=MetricUnit.Count, value=int(succeeded))
    metrics.add_metric(name="BackupFailed", unit=MetricUnit.Count, value=int(not succeeded))
    if record.started_at and record.finished_at:
        seconds = (record.finished_at - record.started_at).total_seconds()
        metrics.add_metric(name="BackupDuration", unit=MetricUnit.Seconds, value=seconds)
    if succeeded and record.size is not None:
        metrics.add_metric(name="BackupBytes", unit=MetricUnit.Bytes, value=record.size)


def record_base_backup_metrics(metrics: Metrics, database: str, result: BaseBackupResult) -> None:
    """Success/failure, duration and bytes of a finished base backup (continuous backups)."""
    metrics.add_dimension(name="database", value=database)
    succeeded = result.status == "done"
    metrics.add_metric(name="BaseBackupSucceeded", unit=MetricUnit.Count, value=int(succeeded))
    metrics.add_metric(name="BaseBackupFailed", unit=MetricUnit.Count, value=int(not succeeded))
    if result.base is not None:
        seconds = (result.base.finished_at - result.base.started_at).total_seconds()
        metrics.add_metric(name="BaseBackupDuration", unit=MetricUnit.Seconds, value=seconds)
        metrics.add_metric(name="BaseBackupBytes", unit=MetricUnit.Bytes, value=result.base.size)
