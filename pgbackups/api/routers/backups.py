"""/v1/databases/{db}/backups: list, take, show, delete, download."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from pgbackups.api.params import BackupIdParam, BackupRefParam, DatabaseParam, answers
from pgbackups.api.schemas import ArchiveLink, BackupPage, BackupView
from pgbackups.api.views import archive_link, backup_views
from pgbackups.domain.models import (
    DEFAULT_URL_LIFETIME,
    MAX_URL_LIFETIME,
    BackupMethod,
    BackupStatus,
)
from pgbackups.services import Services
from pgbackups.usecases.backup import backups_page, request_backup, show_backup
from pgbackups.usecases.downloads import archive_download
from pgbackups.usecases.retention import delete_backup

TAGS = ["backups"]


def build_router(services: Services) -> Router:
    # A removed database's backups are still shown, downloaded and deleted while they expire.
    router = Router()

    @router.get(
        "/v1/databases/<db>/backups",
        operation_id="listBackups",
        summary="List backups, newest first",
        tags=TAGS,
        responses=answers(200, "A page of backups"),
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
        page = backups_page(services, db, limit=limit, cursor=cursor, status=status, method=method)
        return BackupPage(
            backups=backup_views(page.backups, page.kept), next_cursor=page.next_cursor
        )

    @router.post(
        "/v1/databases/<db>/backups",
        operation_id="createBackup",
        summary="Take a manual backup now",
        tags=TAGS,
        responses=answers(202, "Scheduled: poll the backup until done or error", 409, 503),
    )
    def create_backup(db: DatabaseParam) -> Response[BackupView]:
        (scheduled,) = backup_views([request_backup(services, db)], {})
        return Response(
            status_code=202, content_type=content_types.APPLICATION_JSON, body=scheduled
        )

    @router.get(
        "/v1/databases/<db>/backups/<id>",
        operation_id="getBackup",
        summary="Show a backup (`latest`: the newest done one)",
        tags=TAGS,
        responses=answers(200, "The backup"),
    )
    def get_backup(db: DatabaseParam, id: BackupRefParam) -> BackupView:
        shown = show_backup(services, db, id)
        (backup,) = backup_views(shown.backups, shown.kept)
        return backup

    @router.delete(
        "/v1/databases/<db>/backups/<id>",
        operation_id="deleteBackup",
        summary="Delete a backup's archive and record",
        tags=TAGS,
        responses=answers(204, "Deleted", 409),
    )
    def delete(db: DatabaseParam, id: BackupIdParam) -> Response[None]:
        delete_backup(services, db, id)  # Conflict while scheduled or running
        return Response(status_code=204)

    @router.get(
        "/v1/databases/<db>/backups/<id>/archive",
        operation_id="getBackupArchive",
        summary="A presigned URL to download a done backup as <name>.pgsql",
        tags=TAGS,
        responses=answers(200, "The download link", 409),
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
        return archive_link(archive_download(services, db, id, timedelta(seconds=expires_in)))

    return router
