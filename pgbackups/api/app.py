"""The HTTP API (SPEC §3): routes, request validation, errors, the OpenAPI document.

`build_api(services)` returns the powertools resolver that the api function
resolves events with. Routes are thin: they call `pgbackups.api.databases` and
`pgbackups.api.backups`, which raise domain errors, and ONE exception handler
turns every error into `{"error": {"code", "message", ...}}` with its status.
The OpenAPI document is generated from the same pydantic models that validate
the requests, so what is published is what is enforced.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from pgbackups.adapters.archives import DEFAULT_URL_LIFETIME, MAX_URL_LIFETIME
from pgbackups.api import backups, databases
from pgbackups.api.errors import MalformedBody
from pgbackups.api.schemas import (
    BACKUP_REF,
    ArchiveLink,
    BackupPage,
    Database,
    DatabaseChanges,
    DatabaseList,
    DatabaseRegistration,
    ErrorResponse,
    GatewayMessage,
    ScheduleChanges,
    ScheduleView,
)
from pgbackups.domain.errors import PgBackupsError
from pgbackups.domain.models import (
    BACKUP_ID,
    DATABASE_NAME,
    BackupMethod,
    BackupRecord,
    BackupStatus,
)
from pgbackups.ports import Services

logger = Logger(child=True)

OPENAPI_PATH = "/v1/openapi.json"
BEARER = "bearerAuth"

DatabaseParam = Annotated[
    str, Path(pattern=DATABASE_NAME.pattern, description="Database name", examples=["shop"])
]
BackupIdParam = Annotated[str, Path(pattern=BACKUP_ID.pattern, description="Backup id (ULID)")]
BackupRefParam = Annotated[
    str, Path(pattern=BACKUP_REF, description="Backup id (ULID), or `latest`: the newest done one")
]


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


def _error(status: int, code: str, message: str, **details: object) -> Response[dict[str, Any]]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": {"code": code, "message": message, **details}},
    )


def _field(loc: tuple[Any, ...]) -> str:
    """`retention.daily` from pydantic's ("body", "retention", "daily")."""
    parts = [str(part) for part in loc[1:]] if len(loc) > 1 else [str(part) for part in loc]
    return ".".join(parts)


def _install_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(PgBackupsError)
    def domain_error(error: PgBackupsError) -> Response[dict[str, Any]]:
        return _error(error.status, error.code, error.message, **error.details)

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
                if _field(problem["loc"]) == "db":
                    return _error(404, "database_not_found", "no such database")
                return _error(404, "backup_not_found", "no such backup")
        first = problems[0]
        field = _field(first["loc"])
        if first["type"] == "missing" and field == "body":
            return _error(422, "invalid_input", "body: a JSON object is required", field="body")
        message = "; ".join(f"{_field(p['loc'])}: {p['msg']}" for p in problems)
        return _error(422, "invalid_input", message, field=field)

    @app.not_found
    def unknown_route(_: NotFoundError) -> Response[dict[str, Any]]:
        event = app.current_event
        return _error(404, "not_found", f"no route {event.http_method} {event.path}")

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response[dict[str, Any]]:
        logger.exception("unexpected error")
        return _error(500, "internal_error", "internal error")


# -- documentation of answers -------------------------------------------------------

_ERROR_DESCRIPTIONS = {
    400: "The body is not JSON",
    404: "No such database or backup (or, from API Gateway, no such route)",
    409: "Conflicts with the current state (exists, in progress, not done)",
    422: "Invalid input: the message names the field",
    503: "The backup function could not be started; the backup is recorded as failed",
}


def _answers(success: int, description: str, *errors: int) -> dict[int, Any]:
    """The route's documented answers: its success, its errors, and the gateway's."""
    answers: dict[int, Any] = {success: {"description": description}}
    if success == 204:
        answers[success]["content"] = {}
    for status in (404, 422, *errors):
        answers[status] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorResponse}},
        }
    # API Gateway answers a path that matches no route itself, e.g. an empty name.
    answers[404]["content"][content_types.APPLICATION_JSON]["model"] = (
        ErrorResponse | GatewayMessage
    )
    answers[401] = {
        "description": "No bearer token (answered by API Gateway)",
        "content": {content_types.APPLICATION_JSON: {"model": GatewayMessage}},
    }
    answers[403] = {
        "description": "Wrong bearer token (answered by API Gateway)",
        "content": {content_types.APPLICATION_JSON: {"model": GatewayMessage}},
    }
    return answers


def _json(status: int, body: Any) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


# -- routes -----------------------------------------------------------------------------


def _database_routes(app: APIGatewayHttpResolver, services: Services) -> None:
    tags = ["databases"]

    @app.get(
        "/v1/databases",
        operation_id="listDatabases",
        summary="List databases",
        tags=tags,
        responses=_answers(200, "The registered databases"),
    )
    def list_databases() -> DatabaseList:
        records = services.catalog.list_databases()
        return DatabaseList(databases=[databases.database_view(services, r) for r in records])

    @app.post(
        "/v1/databases",
        operation_id="createDatabase",
        summary="Register a database (its URLs are checked with a real connection)",
        tags=tags,
        responses=_answers(201, "Registered", 400, 409),
    )
    def create_database(registration: DatabaseRegistration) -> Response[Database]:
        record = databases.register_database(services, registration)
        return _json(201, databases.database_view(services, record))

    @app.get(
        "/v1/databases/<db>",
        operation_id="getDatabase",
        summary="Show a database",
        tags=tags,
        responses=_answers(200, "The database"),
    )
    def get_database(db: DatabaseParam) -> Database:
        return databases.database_view(services, services.catalog.get_database(db))

    @app.patch(
        "/v1/databases/<db>",
        operation_id="updateDatabase",
        summary="Change a database's URLs, schedule, retention or compression",
        tags=tags,
        responses=_answers(200, "The changed database", 400),
    )
    def update_database(db: DatabaseParam, changes: DatabaseChanges) -> Database:
        record = databases.change_database(services, db, changes)
        return databases.database_view(services, record)

    @app.delete(
        "/v1/databases/<db>",
        operation_id="deleteDatabase",
        summary="Remove a database: its schedule stops, its backups expire under its policy",
        tags=tags,
        responses=_answers(204, "Removed"),
    )
    def delete_database(db: DatabaseParam) -> Response[None]:
        databases.remove_database(services, db)
        return Response(status_code=204)

    @app.get(
        "/v1/databases/<db>/schedule",
        operation_id="getSchedule",
        summary="Show when periodic backups run",
        tags=["schedule"],
        responses=_answers(200, "The schedule, with its next run"),
    )
    def get_schedule(db: DatabaseParam) -> ScheduleView:
        schedule = services.catalog.get_database(db).schedule
        return databases.schedule_view(schedule, services.clock())

    @app.put(
        "/v1/databases/<db>/schedule",
        operation_id="putSchedule",
        summary="Set when periodic backups run (the hour is kept in the given time zone)",
        tags=["schedule"],
        responses=_answers(200, "The schedule, with its next run", 400),
    )
    def put_schedule(db: DatabaseParam, changes: ScheduleChanges) -> ScheduleView:
        schedule = databases.change_schedule(services, db, changes)
        return databases.schedule_view(schedule, services.clock())


def _backup_routes(app: APIGatewayHttpResolver, services: Services) -> None:
    tags = ["backups"]

    @app.get(
        "/v1/databases/<db>/backups",
        operation_id="listBackups",
        summary="List backups, newest first",
        tags=tags,
        responses=_answers(200, "A page of backups"),
    )
    def list_backups(
        db: DatabaseParam,
        limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
        cursor: Annotated[
            str | None, Query(max_length=200, description="`next_cursor` of the previous page")
        ] = None,
        status: Annotated[BackupStatus | None, Query()] = None,
        method: Annotated[BackupMethod | None, Query()] = None,
    ) -> BackupPage:
        return backups.backup_page(
            services, db, limit=limit, cursor=cursor, status=status, method=method
        )

    @app.post(
        "/v1/databases/<db>/backups",
        operation_id="createBackup",
        summary="Take a manual backup now",
        tags=tags,
        responses=_answers(202, "Scheduled: poll the backup until done or error", 409, 503),
    )
    def create_backup(db: DatabaseParam) -> Response[BackupRecord]:
        return _json(202, backups.request_backup(services, db))

    @app.get(
        "/v1/databases/<db>/backups/<id>",
        operation_id="getBackup",
        summary="Show a backup (`latest`: the newest done one)",
        tags=tags,
        responses=_answers(200, "The backup"),
    )
    def get_backup(db: DatabaseParam, id: BackupRefParam) -> BackupRecord:
        return backups.find_backup(services, db, id)

    @app.delete(
        "/v1/databases/<db>/backups/<id>",
        operation_id="deleteBackup",
        summary="Delete a backup's archive and record",
        tags=tags,
        responses=_answers(204, "Deleted", 409),
    )
    def delete_backup(db: DatabaseParam, id: BackupIdParam) -> Response[None]:
        backups.remove_backup(services, db, id)
        return Response(status_code=204)

    @app.get(
        "/v1/databases/<db>/backups/<id>/archive",
        operation_id="getBackupArchive",
        summary="A presigned URL to download a done backup as <name>.pgsql",
        tags=tags,
        responses=_answers(200, "The download link", 409),
    )
    def get_backup_archive(
        db: DatabaseParam,
        id: BackupRefParam,
        expires_in: Annotated[
            int,
            Query(
                ge=1,
                le=int(MAX_URL_LIFETIME.total_seconds()),
                description="Seconds the URL stays valid",
            ),
        ] = int(DEFAULT_URL_LIFETIME.total_seconds()),
    ) -> ArchiveLink:
        return backups.archive_link(services, db, id, expires_in)


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
    # powertools reads this attribute when it builds each route's middleware stack.
    app._request_validation_middleware = JsonRequestValidation()
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
    _database_routes(app, services)
    _backup_routes(app, services)
    _openapi_route(app)
    return app
