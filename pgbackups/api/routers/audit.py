"""/v1/audit: the hash-chained audit trail, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, Field

from pgbackups.api.params import answers
from pgbackups.domain.errors import InvalidInput
from pgbackups.domain.models import DATABASE_NAME
from pgbackups.services import Services
from pgbackups.usecases.audit import AuditFilter, list_entries

TAGS = ["audit"]


class AuditEntryView(BaseModel):
    seq: int
    at: str = Field(description="RFC 3339, UTC")
    token: str = Field(description="The token's name; `-` when refused without a known name")
    role: str
    source_ip: str
    method: str
    route: str
    target: str
    database: str
    status: int
    prev: str = Field(description="SHA-256 of the previous entry")
    hash: str = Field(description="SHA-256 of this entry's canonical JSON (without `hash`)")


class ChainHeadView(BaseModel):
    seq: int
    hash: str


class AuditPage(BaseModel):
    entries: list[AuditEntryView]
    next_cursor: str | None
    head: ChainHeadView = Field(description="The newest entry's sequence number and hash")


def build_router(services: Services) -> Router:
    router = Router()

    @router.get(
        "/v1/audit",
        operation_id="listAudit",
        summary="The audit trail: changes, download URLs and restore plans issued, refusals",
        tags=TAGS,
        responses=answers(200, "Entries, newest first"),
    )
    def list_audit(
        database: Annotated[str | None, Query(pattern=DATABASE_NAME.pattern)] = None,
        token: Annotated[str | None, Query(max_length=63)] = None,
        since: Annotated[datetime | None, Query(description="RFC 3339, inclusive")] = None,
        until: Annotated[datetime | None, Query(description="RFC 3339, exclusive")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 100,
        cursor: Annotated[
            str | None, Query(max_length=20, description="`next_cursor` of the previous page")
        ] = None,
    ) -> AuditPage:
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInput(f"{name}: give the time zone (e.g. Z)", field=name)
        head = services.audit.head()
        entries, next_cursor = list_entries(
            services.audit,
            AuditFilter(database=database, token=token, since=since, until=until),
            limit=limit,
            cursor=cursor,
        )
        return AuditPage(
            entries=[AuditEntryView(**entry.fields()) for entry in entries],
            next_cursor=next_cursor,
            head=ChainHeadView(seq=head.seq, hash=head.hash),
        )

    return router
