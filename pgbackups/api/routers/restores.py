"""/v1/databases/{db}/restores: restores run by the stack, listed and shown."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from pgbackups.api.params import DatabaseParam, answers
from pgbackups.api.schemas.restores import RestorePage, RestoreRequest, RestoreView
from pgbackups.api.views import restore_view
from pgbackups.domain.models import BACKUP_ID
from pgbackups.services import Services
from pgbackups.usecases.restores import NewRestore, request_restore, restores_page, show_restore

TAGS = ["restores"]
RestoreIdParam = Annotated[str, Path(pattern=BACKUP_ID.pattern, description="Restore id (ULID)")]


def build_router(services: Services) -> Router:
    router = Router()

    @router.post(
        "/v1/databases/<db>/restores",
        operation_id="createRestore",
        summary="Restore a backup or a point in time into a target database, run by the stack",
        tags=TAGS,
        responses=answers(202, "Scheduled: poll the restore until done or error", 400, 409, 503),
    )
    def create_restore(db: DatabaseParam, body: RestoreRequest) -> Response[RestoreView]:
        new = NewRestore(
            target_url=body.target_url,
            backup_id=body.backup_id,
            target_time=body.target_time,
            tables=tuple(body.tables),
            schemas=tuple(body.schemas),
            clean=body.clean,
            confirm=body.confirm,
        )
        return Response(
            status_code=202,
            content_type=content_types.APPLICATION_JSON,
            body=restore_view(request_restore(services, db, new)),
        )

    @router.get(
        "/v1/databases/<db>/restores",
        operation_id="listRestores",
        summary="List restores, newest first",
        tags=TAGS,
        responses=answers(200, "A page of restores"),
    )
    def list_restores(
        db: DatabaseParam,
        limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
        cursor: Annotated[
            str | None, Query(max_length=200, description="`next_cursor` of the previous page")
        ] = None,
    ) -> RestorePage:
        records, next_cursor = restores_page(services, db, limit=limit, cursor=cursor)
        return RestorePage(restores=[restore_view(r) for r in records], next_cursor=next_cursor)

    @router.get(
        "/v1/databases/<db>/restores/<id>",
        operation_id="getRestore",
        summary="Show a restore",
        tags=TAGS,
        responses=answers(200, "The restore"),
    )
    def get_restore(db: DatabaseParam, id: RestoreIdParam) -> RestoreView:
        return restore_view(show_restore(services, db, id))

    return router
