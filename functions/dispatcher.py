"""Dispatcher function: the hourly EventBridge rule's target, and the project bus's
backup, restore, drill and `PITR Broken` events' (one database's health refreshed at
once, so a failure alerts without waiting for the hour)."""

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pgbackups.settings import Settings
from pgbackups.usecases.dispatch import dispatch
from pgbackups.usecases.health import HEALTH_EVENTS, counts, refresh_database_health
from pgbackups.wiring import build_services

logger = Logger()
tracer = Tracer()
metrics = Metrics()
services = build_services(Settings.from_env())


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    if event.source == "pgbackups" and event.detail_type in HEALTH_EVENTS:
        change = refresh_database_health(services, str(event.detail.get("database", "")))
        return {"health": change.health.status if change else None}
    report = dispatch(services, datetime.fromisoformat(event.time))
    metrics.add_metric(
        name="PeriodicBackupsScheduled", unit=MetricUnit.Count, value=len(report.scheduled)
    )
    metrics.add_metric(name="StaleBackupsReaped", unit=MetricUnit.Count, value=len(report.reaped))
    metrics.add_metric(name="BackupsPruned", unit=MetricUnit.Count, value=len(report.pruned))
    metrics.add_metric(name="DatabasesFailed", unit=MetricUnit.Count, value=len(report.failed))
    # Published every run, zeros included: the alarm on DatabasesFailing treats a missing
    # datapoint as breaching, so a dispatcher that stops running is itself an alert.
    health = counts(report.healths)
    metrics.add_metric(name="DatabasesFailing", unit=MetricUnit.Count, value=health.failing)
    metrics.add_metric(name="DatabasesStale", unit=MetricUnit.Count, value=health.stale)
    metrics.add_metric(name="DatabasesLagging", unit=MetricUnit.Count, value=health.lagging)
    return {
        "scheduled": [record.id for record in report.scheduled],
        "reaped": [record.id for record in report.reaped],
        "pruned": [record.id for record in report.pruned],
    }
