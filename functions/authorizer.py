"""Authorizer function: the HTTP API's Lambda authorizer (payload 2.0, simple responses).

An accepted token's name and role go to the API in the authorizer's context
(`requestContext.authorizer.lambda`), where each route's role is checked; a
refused one is recorded in the audit trail.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerEventV2,
    APIGatewayAuthorizerResponseV2,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from pgbackups.api.auth import bearer_token
from pgbackups.usecases.tokens import Request
from pgbackups.wiring import build_authenticator

logger = Logger()
tracer = Tracer()
metrics = Metrics()
authenticator = build_authenticator()


# The event holds the Authorization header: never logged, whatever
# POWERTOOLS_LOGGER_LOG_EVENT says.
@logger.inject_lambda_context(
    correlation_id_path="requestContext.requestId", log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_source(data_class=APIGatewayAuthorizerEventV2)
def handler(event: APIGatewayAuthorizerEventV2, context: LambdaContext) -> dict[str, Any]:
    http = event.request_context.http
    request = Request(
        source_ip=http.source_ip,
        method=http.method,
        route=event.route_key,
        target=event.raw_path,
        database=(event.path_parameters or {}).get("db", ""),
    )
    bearer = authenticator.authorize(bearer_token(event.headers.get("authorization")), request)
    metrics.add_metric(
        name="RequestsAuthorized" if bearer else "RequestsDenied", unit=MetricUnit.Count, value=1
    )
    if bearer is None:
        return APIGatewayAuthorizerResponseV2(authorize=False).asdict()
    return APIGatewayAuthorizerResponseV2(
        authorize=True, context={"token": bearer.name, "role": bearer.role.value}
    ).asdict()
