"""Backup function: takes one scheduled backup (async invocation {database, backup_id, kind}):
a logical backup, a continuous backup's base backup (kind "base"), or runs a restore
(kind "restore": backup_id is the restore's id)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pgbackups.domain.models import BackupRequest
from pgbackups.observability import record_backup_metrics, record_base_backup_metrics
from pgbackups.settings import Settings
from pgbackups.usecases.backup import run_backup
from pgbackups.usecases.pitr import run_base_backup
from pgbackups.usecases.restores import run_restore
from pgbackups.wiring import build_services

logger = Logger()
tracer = Tracer()
metrics = Metrics()
services = build_services(Settings.from_env())


@logger.inject_lambda_context(correlation_id_path="backup_id", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = BackupRequest.model_validate(event)
    seconds_left = context.get_remaining_time_in_millis() / 1000
    if request.kind == "restore":
        restore = run_restore(services, request, seconds_left=seconds_left, runner="lambda")
        status = restore.status if restore is not None else "unchanged"
        return {"restore_id": request.backup_id, "kind": "restore", "status": status}
    if request.kind == "base":
        result = run_base_backup(services, request, seconds_left=seconds_left, runner="lambda")
        if result is None:
            metrics.add_metric(name="DuplicateInvocations", unit=MetricUnit.Count, value=1)
            return {"backup_id": request.backup_id, "kind": "base", "status": "unchanged"}
        record_base_backup_metrics(metrics, request.database, result)
        return {"backup_id": request.backup_id, "kind": "base", "status": result.status}
    record = run_backup(services, request, seconds_left=seconds_left, runner="lambda")
    if record is None:
        metrics.add_metric(name="DuplicateInvocations", unit=MetricUnit.Count, value=1)
        return {"backup_id": request.backup_id, "status": "unchanged"}
    record_backup_metrics(metrics, record)
    return {"backup_id": record.id, "status": record.status}
