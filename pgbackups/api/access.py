"""Around every route: the role check, and the audit trail.

The Lambda authorizer has already accepted the token and put its name and role
in the request context; `check_role` compares that role with the one the route
needs (`pgbackups.domain.access.ROUTES`, the one table) and answers 403
`forbidden` naming it. `AccessControl` runs it, and records in the audit trail
every change, every download URL or restore plan issued and every refusal,
with the answer's status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import BaseMiddlewareHandler, NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from pgbackups.api.errors import http_status
from pgbackups.domain.access import NoRule, Role, check_access, is_audited
from pgbackups.domain.audit import AuditEvent
from pgbackups.domain.errors import PgBackupsError
from pgbackups.domain.models import to_rfc3339
from pgbackups.services import Services
from pgbackups.usecases.audit import record

logger = Logger(child=True)


def bearer(event: APIGatewayProxyEventV2) -> tuple[str, Role | None]:
    """The token's name and role as the authorizer passed them (none: no role at all)."""
    context = event.request_context.authorizer.get_lambda or {}
    name = context.get("token")
    given = context.get("role")
    role = Role(given) if given in set(Role) else None
    return (name if isinstance(name, str) and name else "-"), role


def _body(app: APIGatewayHttpResolver) -> Any:
    try:
        return app.current_event.json_body
    except (ValueError, TypeError, RecursionError):
        return None  # not JSON, or nested too deep: request validation answers 400 next


def check_role(
    app: APIGatewayHttpResolver, next_middleware: Callable[[Any], Response[Any]]
) -> Response[Any]:
    method, route = app.request.method, app.request.route
    _, role = bearer(app.current_event)
    try:
        check_access(role, method, route, _body(app))
    except NoRule:
        # No route (powertools sends unknown paths down the same chain to its not-found
        # handler), or one nobody gave a rule (the route table's test catches it first):
        # either way, no handler runs: the app's not-found handler answers.
        raise NotFoundError() from None
    return next_middleware(app)


def _status_of(error: Exception) -> int:
    """The status the API's exception handlers answer `error` with."""
    if isinstance(error, PgBackupsError):
        return http_status(error)
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, RequestValidationError):
        paths = [problem for problem in error.errors() if problem["loc"][:1] == ("path",)]
        return 404 if paths else 422
    return 500


class AccessControl(BaseMiddlewareHandler):
    """The audit trail around the role check around request validation.

    powertools runs its request validation before any middleware an app adds,
    so this takes its place: a token without the route's role gets 403 before
    its body is even looked at, and the audit trail records the answer given.
    """

    def __init__(self, services: Services, validation: BaseMiddlewareHandler) -> None:
        self._services = services
        self._validation = validation

    def handler(self, app: Any, next_middleware: NextMiddleware) -> Response[Any]:
        status = 500
        try:
            response: Response[Any] = check_role(
                app, lambda app: self._validation(app, next_middleware)
            )
            status = response.status_code
            return response
        except Exception as error:
            status = _status_of(error)
            raise
        finally:
            _record(self._services, app, status)


def _record(services: Services, app: APIGatewayHttpResolver, status: int) -> None:
    method, route = app.request.method, app.request.route
    if not is_audited(method, route, status):
        return
    name, role = bearer(app.current_event)
    event = app.current_event
    database = app.request.path_parameters.get("db", "")
    try:
        record(
            services.audit,
            AuditEvent(
                at=to_rfc3339(services.clock()),
                token=name,
                role=role.value if role else "",
                source_ip=event.request_context.http.source_ip,
                method=method,
                route=f"{method} {route}",
                target=event.path,
                database=database if isinstance(database, str) else "",
                status=status,
            ),
        )
    except Exception:
        # The request is done (and may have changed something): its answer stands,
        # and the failure to record it is an error for the operators' alarms.
        logger.exception("the audit trail could not record a request")
