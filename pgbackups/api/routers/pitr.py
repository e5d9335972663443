"""Continuous backups on the HTTP API: GET/PUT /v1/databases/{db}/pitr, and the restore plan.

The restore plan (GET /v1/databases/{db}/pitr/restore?target_time=...) is what
`pgbackups pitr-restore` downloads: presigned URLs of one base backup and the WAL
after it, a page at a time, each WAL file with the digest recorded when it was
archived. A time in no recoverable range (a gap, or outside them all) is refused (422
`outside_recovery_window`, with `before` and `after`: the nearest recoverable times),
continuous backups that are off with no stored history left too (409 `pitr_disabled`),
and a plan whose WAL has a hole (409 `wal_missing`), before any URL is made, so the CLI
downloads nothing.

Enabling checks the server and says what is wrong, one code each (422):
`server_unreachable`, `authentication_failed`, `replication_not_permitted`,
`replication_refused_by_pg_hba`, `wal_level_too_low`, `no_free_wal_sender`,
`no_free_replication_slot`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from pgbackups.api.params import DatabaseParam, answers
from pgbackups.api.schemas.pitr import PitrChanges, PitrView, RestorePlanView
from pgbackups.api.views import pitr_view
from pgbackups.domain.errors import InvalidInput
from pgbackups.domain.pitr import PitrSettings
from pgbackups.services import Services
from pgbackups.usecases import pitr


def _target(value: str) -> datetime | None:
    if value == "latest":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"target_time: {value!r} is not an RFC 3339 time", field="target_time"
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput("target_time: give the time zone (e.g. Z)", field="target_time")
    return moment.astimezone(UTC)


def build_router(services: Services) -> Router:
    router = Router()
    tags = ["continuous backups"]

    @router.get(
        "/v1/databases/<db>/pitr",
        operation_id="getPitr",
        summary=(
            "Continuous backups: settings, status, the recoverable ranges and the breaks "
            "between them"
        ),
        tags=tags,
        responses=answers(200, "Continuous backups of the database"),
    )
    def get_pitr(db: DatabaseParam) -> PitrView:
        return pitr_view(pitr.pitr_overview(services, db))

    @router.put(
        "/v1/databases/<db>/pitr",
        operation_id="putPitr",
        summary=(
            "Enable, change or disable continuous backups (the server is checked); enabling "
            "starts the first base backup on the backups' runner. The settings a database "
            "already has change nothing; a new replication URL to the same server keeps "
            "the chain"
        ),
        tags=tags,
        responses=answers(200, "Continuous backups of the database", 400, 409),
    )
    def put_pitr(db: DatabaseParam, changes: PitrChanges) -> PitrView:
        settings = PitrSettings(
            enabled=changes.enabled,
            base_backup_every_days=changes.base_backup_every_days,
            window_days=changes.window_days,
        )
        pitr.enable_pitr(services, db, settings, changes.replication_url)
        return pitr_view(pitr.pitr_overview(services, db))

    @router.get(
        "/v1/databases/<db>/pitr/restore",
        operation_id="getPitrRestorePlan",
        summary="What a restore to a point in time downloads (presigned URLs, one hour)",
        tags=tags,
        responses=answers(200, "The base backup and WAL to download", 409),
    )
    def get_restore_plan(
        db: DatabaseParam,
        target_time: Annotated[
            str,
            Query(
                min_length=1,
                max_length=64,
                description="RFC 3339 time within the recovery window, or `latest`",
            ),
        ] = "latest",
        cursor: Annotated[
            str | None, Query(max_length=200, description="`next_cursor` of the previous page")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=pitr.RESTORE_PAGE_SIZE)] = pitr.RESTORE_PAGE_SIZE,
    ) -> RestorePlanView:
        plan = pitr.plan_restore(services, db, _target(target_time), cursor=cursor, limit=limit)
        return RestorePlanView.model_validate(pitr.restore_links(services, plan))

    return router
