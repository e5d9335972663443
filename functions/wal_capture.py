"""WAL capture function: the schedule starts one invocation per database with continuous
backups ({} → fan out); each ({"database": name}) captures that database's WAL once."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pgbackups.settings import Settings
from pgbackups.usecases.pitr.capture import capture, start_captures
from pgbackups.wiring import build_services

logger = Logger()
tracer = Tracer()
metrics = Metrics()
services = build_services(Settings.from_env())


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    database = event.get("database")
    if not isinstance(database, str):
        started = start_captures(services)
        metrics.add_metric(name="CapturesStarted", unit=MetricUnit.Count, value=len(started))
        return {"started": started}
    logger.append_keys(database=database)
    report = capture(services, database, seconds_left=context.get_remaining_time_in_millis() / 1000)
    metrics.add_dimension(name="database", value=database)
    metrics.add_metric(
        name="WalSegmentsArchived", unit=MetricUnit.Count, value=len(report.segments)
    )
    metrics.add_metric(
        name="PitrBroken", unit=MetricUnit.Count, value=int(report.outcome == "broken")
    )
    return {
        "database": database,
        "outcome": report.outcome,
        "segments": report.segments,
        "partial": report.partial,
        # The base backup this run asked the backups' runner for (it is taken there).
        "base_backup": report.base_backup,
        "broken_reason": report.broken_reason,
    }
