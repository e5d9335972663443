"""The HTTP API (docs/api.md): routes, request validation, errors, the OpenAPI document.

`build_api(services)` returns the powertools resolver that the api function
resolves events with. It mounts one Router per resource (`pgbackups.api.routers`);
routes parse, call one use case and render a view. Use cases raise domain errors,
and ONE exception handler turns every error into `{"error": {"code", "message",
...}}` with the status `pgbackups.api.errors` maps its kind to.
The OpenAPI document is generated from the same pydantic models that validate
the requests, so what is published is what is enforced.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

from pgbackups.api.access import AccessControl
from pgbackups.api.errors import MalformedBody, field_path, http_status, validation_message
from pgbackups.api.routers import (
    audit,
    backups,
    dashboard,
    databases,
    pitr,
    restores,
    schedule,
    signed_in,
    tokens,
    verifications,
)
from pgbackups.domain.errors import PgBackupsError
from pgbackups.services import Services

logger = Logger(child=True)

OPENAPI_PATH = "/v1/openapi.json"
BEARER = "bearerAuth"


class JsonRequestValidation(OpenAPIRequestValidationMiddleware):
    """powertools' request validation, for JSON bodies only.

    A body that is not JSON (malformed, not UTF-8, another media type) is a 400
    naming the problem; powertools would answer 422, 415, or fail on a
    multipart body without a boundary.
    """

    def _get_body(self, app: Any) -> Any:
        media_type = app.current_event.headers.get("content-type", "").split(";")[0].strip()
        if media_type and media_type.lower() != "application/json":
            raise MalformedBody(
                f"the request body must be JSON (Content-Type: application/json), not {media_type}"
            )
        try:
            return app.current_event.json_body
        except (ValueError, TypeError):  # bad JSON, UTF-8 or base64 alike
            raise MalformedBody("the request body is not valid JSON") from None
        except RecursionError:  # arrays or objects nested thousands deep
            raise MalformedBody("the request body is nested too deeply") from None


# On every answer: a browser must never read JSON (which may echo input) as HTML.
JSON_HEADERS = {"X-Content-Type-Options": "nosniff"}


def _error(status: int, code: str, message: str, **details: object) -> Response[dict[str, Any]]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": {"code": code, "message": message, **details}},
        headers=dict(JSON_HEADERS),
    )


def _json_headers(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Adds JSON_HEADERS to the routes' answers (errors get them from `_error`)."""
    response = next_middleware(app)
    response.headers.update(JSON_HEADERS)
    return response


def _install_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(PgBackupsError)
    def domain_error(error: PgBackupsError) -> Response[dict[str, Any]]:
        return _error(http_status(error), error.code, error.message, **error.details)

    @app.exception_handler(RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response[dict[str, Any]]:
        problems = error.errors()
        if any(problem["loc"][:1] == ("response",) for problem in problems):
            # Our answer broke our own document: a bug, never the caller's fault.
            logger.error("response does not match the OpenAPI document", extra={"errors": problems})
            return _error(500, "internal_error", "internal error")
        for problem in problems:
            if problem["loc"][:1] == ("path",):
                # A database name or backup id that cannot exist: never looked up.
                if field_path(problem["loc"]) == "db":
                    return _error(404, "database_not_found", "no such database")
                if field_path(problem["loc"]) == "name":
                    return _error(404, "token_not_found", "no such token")
                if "/restores/" in app.current_event.path:
                    return _error(404, "restore_not_found", "no such restore")
                return _error(404, "backup_not_found", "no such backup")
        first = problems[0]
        field = field_path(first["loc"])
        if first["type"] == "missing" and field == "body":
            return _error(422, "invalid_input", "body: a JSON object is required", field="body")
        message = "; ".join(validation_message(problem) for problem in problems)
        return _error(422, "invalid_input", message, field=field)

    @app.not_found
    def unknown_route(_: NotFoundError) -> Response[Any]:
        event = app.current_event
        if not event.path.startswith("/v1/"):
            # The dashboard's side: its plain 404, which does not echo the path.
            return dashboard.not_found()
        return _error(404, "not_found", f"no route {event.http_method} {event.path}")

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response[dict[str, Any]]:
        logger.exception("unexpected error")
        return _error(500, "internal_error", "internal error")


def openapi_document(app: APIGatewayHttpResolver) -> dict[str, Any]:
    """The OpenAPI document, without the schemas powertools adds and no route uses."""
    document: dict[str, Any] = json.loads(app.get_openapi_json_schema())
    schemas = document["components"]["schemas"]
    used: set[str] = set()
    pending = [{k: v for k, v in document.items() if k != "components"}]
    while pending:
        refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(pending.pop())))
        for name in refs - used:
            used.add(name)
            pending.append(schemas[name])
    document["components"]["schemas"] = {k: v for k, v in schemas.items() if k in used}
    return document


def _openapi_route(app: APIGatewayHttpResolver) -> None:
    document: list[str] = []  # generated on first request, then kept

    # Public (no authorizer in template.yaml) and left out of the document itself.
    @app.get(OPENAPI_PATH, include_in_schema=False)
    def openapi() -> Response[str]:
        if not document:
            document.append(json.dumps(openapi_document(app), separators=(",", ":")))
        return Response(200, content_types.APPLICATION_JSON, document[0])


def build_api(services: Services) -> APIGatewayHttpResolver:
    """The API's resolver, on the given collaborators (moto and fakes in tests)."""
    app = APIGatewayHttpResolver(enable_validation=True)
    # powertools offers no public way to replace its request validation: it runs
    # before every middleware an app can add (`app.use`), so a body check there
    # would come too late. It reads this attribute when it builds each route's
    # middleware stack.
    # The role check and the audit trail wrap it (pgbackups.api.access); powertools
    # only calls the attribute as a middleware, whatever its declared type.
    app._request_validation_middleware = AccessControl(services, JsonRequestValidation())  # type: ignore[assignment]
    app.configure_openapi(
        title="pgbackups",
        version="1",
        summary="Serverless PostgreSQL backups: databases, backups, archives, schedules",
        description=(
            "Every route needs `Authorization: Bearer <token>` (the token is in Secrets "
            "Manager, see the stack's ApiTokenSecretArn output). Errors are "
            '`{"error": {"code", "message"}}`.'
        ),
        security_schemes={BEARER: HTTPBearer(description="The API token")},
        security=[{BEARER: []}],
    )
    _install_error_handlers(app)
    app.use(middlewares=[_json_headers])
    for router in (
        databases,
        schedule,
        backups,
        pitr,
        restores,
        verifications,
        tokens,
        signed_in,
        audit,
    ):
        app.include_router(router.build_router(services))
    _openapi_route(app)
    app.include_router(dashboard.build_router())
    return app
