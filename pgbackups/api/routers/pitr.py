"""Continuous backups on the HTTP API: GET/PUT /v1/databases/{db}/pitr, and the restore plan.

The restore plan (GET /v1/databases/{db}/pitr/restore?target_time=...) is what
`pgbackups pitr-restore` downloads: presigned URLs of one base backup and the WAL
after it, a page at a time. A time outside the recovery window is refused (422)
before any URL is made, so the CLI downloads nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field

from pgbackups.api.params import DatabaseParam, answers
from pgbackups.domain.errors import InvalidInput
from pgbackups.domain.models import RunnerName
from pgbackups.domain.pitr import (
    DEFAULT_BASE_BACKUP_EVERY_DAYS,
    DEFAULT_WINDOW_DAYS,
    PitrSettings,
    PitrStatus,
    recovery_window,
)
from pgbackups.services import Services
from pgbackups.usecases import pitr


class PitrChanges(BaseModel):
    """PUT /v1/databases/{db}/pitr. The replication URL defaults to the database's URL."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool
    replication_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        json_schema_extra={"writeOnly": True},
        examples=["postgres://replicator:secret@db.example.com:5432/shop"],
    )
    base_backup_every_days: int = Field(default=DEFAULT_BASE_BACKUP_EVERY_DAYS, ge=1, le=7)
    window_days: int = Field(default=DEFAULT_WINDOW_DAYS, ge=1, le=30)


class BaseBackupView(BaseModel):
    id: str
    started_at: datetime
    finished_at: datetime
    start_lsn: str
    end_lsn: str
    timeline: int
    size: int
    sha256: str
    runner: RunnerName | None = Field(
        default=None, description="What took it: the backup function or the Fargate task"
    )


class BaseBackupRunView(BaseModel):
    id: str
    status: Literal["scheduled", "running"]
    requested_at: datetime
    started_at: datetime | None
    runner: RunnerName | None
    deadline_at: datetime | None = Field(description="When its runner stops it for sure")


class PitrView(BaseModel):
    enabled: bool
    status: PitrStatus
    broken_reason: str | None
    base_backup_every_days: int
    window_days: int
    earliest_recoverable_at: datetime | None
    latest_recoverable_at: datetime | None
    lag_seconds: float | None = Field(description="Age of the newest WAL in S3")
    last_archived_at: datetime | None
    base_backups: list[BaseBackupView]
    base_backup_in_progress: BaseBackupRunView | None = Field(
        description="The base backup on its way (asked of the backups' runner), if any"
    )
    last_base_backup_error: str | None = Field(
        description="Why the last base backup failed, until one succeeds"
    )


class BaseBackupLink(BaseModel):
    id: str
    url: str
    size: int
    sha256: str
    finished_at: datetime


class WalLink(BaseModel):
    """A WAL file; its SHA-256 comes with the download (`x-amz-meta-sha256`)."""

    name: str
    partial: bool
    url: str


class RestorePlanView(BaseModel):
    target_time: datetime | None = Field(description="null: replay all the WAL (the latest state)")
    server_major: int
    system_id: str
    timeline: int
    source_database: str
    source_user: str
    base_backup: BaseBackupLink
    wal: list[WalLink] = Field(description="This page of the WAL files, in replay order")
    wal_total: int = Field(description="WAL files of the whole restore, every page")
    next_cursor: str | None = Field(description="Ask again with it for the next page")
    expires_at: datetime


def pitr_view(services: Services, database: str) -> PitrView:
    from pgbackups.postgres.lsn import format_lsn

    services.catalog.get_database(database)
    state = services.pitr.get_state(database)
    chains = services.pitr.chains(database)
    bases = sorted(services.pitr.base_backups(database), key=lambda b: b.finished_at)
    window = recovery_window(chains, bases)
    current = next((c for c in chains if state and c.id == state.chain_id), None)
    archived = current.last_archived_at if current else None
    run = services.pitr.base_backup_run(database)
    now = services.clock()
    return PitrView(
        enabled=bool(state and state.enabled),
        status=state.status if state else "disabled",
        broken_reason=state.broken_reason if state and state.status == "broken" else None,
        base_backup_every_days=state.base_backup_every_days
        if state
        else DEFAULT_BASE_BACKUP_EVERY_DAYS,
        window_days=state.window_days if state else DEFAULT_WINDOW_DAYS,
        earliest_recoverable_at=window.earliest,
        latest_recoverable_at=window.latest,
        lag_seconds=(now - archived).total_seconds()
        if archived and state and state.enabled
        else None,
        last_archived_at=archived,
        base_backups=[
            BaseBackupView(
                id=b.id,
                started_at=b.started_at,
                finished_at=b.finished_at,
                start_lsn=format_lsn(b.start_lsn),
                end_lsn=format_lsn(b.end_lsn),
                timeline=b.timeline,
                size=b.size,
                sha256=b.sha256,
                runner=b.runner,
            )
            for b in bases
        ],
        base_backup_in_progress=BaseBackupRunView(
            id=run.id,
            status="running" if run.status == "running" else "scheduled",
            requested_at=run.created_at,
            started_at=run.started_at,
            runner=run.runner,
            deadline_at=run.deadline_at,
        )
        if run is not None and run.status != "error"
        else None,
        last_base_backup_error=run.error if run is not None and run.status == "error" else None,
    )


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
        summary="Continuous backups: settings, status and the recovery window",
        tags=tags,
        responses=answers(200, "Continuous backups of the database"),
    )
    def get_pitr(db: DatabaseParam) -> PitrView:
        return pitr_view(services, db)

    @router.put(
        "/v1/databases/<db>/pitr",
        operation_id="putPitr",
        summary=(
            "Enable, change or disable continuous backups (the server is checked); enabling "
            "starts the first base backup on the backups' runner"
        ),
        tags=tags,
        responses=answers(200, "Continuous backups of the database", 400),
    )
    def put_pitr(db: DatabaseParam, changes: PitrChanges) -> PitrView:
        settings = PitrSettings(
            enabled=changes.enabled,
            base_backup_every_days=changes.base_backup_every_days,
            window_days=changes.window_days,
        )
        pitr.enable_pitr(services, db, settings, changes.replication_url)
        return pitr_view(services, db)

    @router.get(
        "/v1/databases/<db>/pitr/restore",
        operation_id="getPitrRestorePlan",
        summary="What a restore to a point in time downloads (presigned URLs, one hour)",
        tags=tags,
        responses=answers(200, "The base backup and WAL to download"),
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
