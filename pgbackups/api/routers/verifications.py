"""/v1/databases/{db}/verifications: restore drills, requested, listed, shown, and their
reports."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from pgbackups.api.params import DatabaseParam, answers
from pgbackups.api.schemas.verifications import (
    ReportLink,
    VerificationPage,
    VerificationRequest,
    VerificationView,
)
from pgbackups.api.views import verification_view
from pgbackups.domain.models import BACKUP_ID
from pgbackups.services import Services
from pgbackups.usecases.verifications import (
    report_url,
    request_verification,
    show_verification,
    verifications_page,
)

TAGS = ["verifications"]
VerificationIdParam = Annotated[
    str, Path(pattern=BACKUP_ID.pattern, description="Verification id (ULID)")
]


def build_router(services: Services) -> Router:
    router = Router()

    @router.post(
        "/v1/databases/<db>/verifications",
        operation_id="createVerification",
        summary="Drill a backup: restore it into a throwaway server and check it",
        tags=TAGS,
        responses=answers(202, "Scheduled: poll the drill until passed or failed", 409, 503),
    )
    def create_verification(
        db: DatabaseParam, body: VerificationRequest
    ) -> Response[VerificationView]:
        record = request_verification(
            services, db, backup_id=body.backup_id, target_time=body.target_time
        )
        return Response(
            status_code=202,
            content_type=content_types.APPLICATION_JSON,
            body=verification_view(record),
        )

    @router.get(
        "/v1/databases/<db>/verifications",
        operation_id="listVerifications",
        summary="List restore drills, newest first",
        tags=TAGS,
        responses=answers(200, "A page of drills"),
    )
    def list_verifications(
        db: DatabaseParam,
        limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
        cursor: Annotated[
            str | None, Query(max_length=200, description="`next_cursor` of the previous page")
        ] = None,
    ) -> VerificationPage:
        records, next_cursor = verifications_page(services, db, limit=limit, cursor=cursor)
        return VerificationPage(
            verifications=[verification_view(r) for r in records], next_cursor=next_cursor
        )

    @router.get(
        "/v1/databases/<db>/verifications/<id>",
        operation_id="getVerification",
        summary="Show a restore drill",
        tags=TAGS,
        responses=answers(200, "The drill"),
    )
    def get_verification(db: DatabaseParam, id: VerificationIdParam) -> VerificationView:
        return verification_view(show_verification(services, db, id))

    @router.get(
        "/v1/databases/<db>/verifications/<id>/report",
        operation_id="getVerificationReport",
        summary="A download link of a drill's JSON report",
        tags=TAGS,
        responses=answers(200, "The report's presigned URL", 409),
    )
    def get_verification_report(db: DatabaseParam, id: VerificationIdParam) -> ReportLink:
        return ReportLink(url=report_url(services, db, id))

    return router
