"""/v1/databases/{db}/schedule: when periodic backups run."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from pgbackups.api.params import DatabaseParam, answers
from pgbackups.api.schemas import ScheduleChanges, ScheduleView
from pgbackups.api.views import schedule_view
from pgbackups.services import Services
from pgbackups.usecases.databases import change_schedule, show_schedule

TAGS = ["schedule"]


def build_router(services: Services) -> Router:
    router = Router()

    @router.get(
        "/v1/databases/<db>/schedule",
        operation_id="getSchedule",
        summary="Show when periodic backups run",
        tags=TAGS,
        responses=answers(200, "The schedule, with its next run"),
    )
    def get_schedule(db: DatabaseParam) -> ScheduleView:
        return schedule_view(show_schedule(services, db), services.clock())

    @router.put(
        "/v1/databases/<db>/schedule",
        operation_id="putSchedule",
        summary="Set when periodic backups run (the hour is kept in the given time zone)",
        tags=TAGS,
        responses=answers(200, "The schedule, with its next run", 400),
    )
    def put_schedule(db: DatabaseParam, changes: ScheduleChanges) -> ScheduleView:
        schedule = change_schedule(services, db, changes.model_dump(exclude_none=True))
        return schedule_view(schedule, services.clock())

    return router
