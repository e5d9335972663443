"""Authorizer function: the HTTP API's Lambda authorizer (payload 2.0, simple responses)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerEventV2,
    APIGatewayAuthorizerResponseV2,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from pgbackups.wiring import build_token_authorizer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
authorizer = build_token_authorizer()


# The event holds the Authorization header: never logged, whatever
# POWERTOOLS_LOGGER_LOG_EVENT says.
@logger.inject_lambda_context(
    correlation_id_path="requestContext.requestId", log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_source(data_class=APIGatewayAuthorizerEventV2)
def handler(event: APIGatewayAuthorizerEventV2, context: LambdaContext) -> dict[str, Any]:
    authorized = authorizer.is_authorized(event.headers.get("authorization"))
    metrics.add_metric(
        name="RequestsAuthorized" if authorized else "RequestsDenied",
        unit=MetricUnit.Count,
        value=1,
    )
    return APIGatewayAuthorizerResponseV2(authorize=authorized).asdict()
