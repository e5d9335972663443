"""API function: the HTTP API (/v1) on databases, backups, archives and schedules."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pgbackups.api.app import build_api
from pgbackups.settings import Settings
from pgbackups.wiring import build_services

logger = Logger()
tracer = Tracer()
metrics = Metrics()
services = build_services(Settings.from_env())
app = build_api(services)


# log_event=False even if POWERTOOLS_LOGGER_LOG_EVENT says otherwise: events carry
# the bearer token and connection URLs.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True
)
# capture_response=False: responses hold presigned download URLs, valid up to an hour,
# which X-Ray would keep and show to anyone who may read traces.
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = app.resolve(event, context)
    # One count per answer class (2xx, 4xx, 5xx), so a burst of errors shows in metrics.
    metrics.add_metric(
        name=f"Responses{response['statusCode'] // 100}xx", unit=MetricUnit.Count, value=1
    )
    return response
