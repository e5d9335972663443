"""/v1/databases: register, list, show, change, remove."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from pgbackups.api.params import DatabaseParam, answers
from pgbackups.api.schemas import Database, DatabaseChanges, DatabaseList, DatabaseRegistration
from pgbackups.api.views import database_view
from pgbackups.domain.models import DatabaseRecord
from pgbackups.services import Services
from pgbackups.usecases import databases

TAGS = ["databases"]


def build_router(services: Services) -> Router:
    router = Router()

    def view(record: DatabaseRecord) -> Database:
        ((_, last),) = databases.databases_with_last_backup(services, [record])
        return database_view(record, last, services.clock())

    @router.get(
        "/v1/databases",
        operation_id="listDatabases",
        summary="List databases",
        tags=TAGS,
        responses=answers(200, "The registered databases"),
    )
    def list_databases() -> DatabaseList:
        now = services.clock()
        return DatabaseList(
            databases=[
                database_view(record, last, now)
                for record, last in databases.list_databases(services)
            ]
        )

    @router.post(
        "/v1/databases",
        operation_id="createDatabase",
        summary="Register a database (its URLs are checked with a real connection)",
        tags=TAGS,
        responses=answers(201, "Registered", 400, 409),
    )
    def create_database(registration: DatabaseRegistration) -> Response[Database]:
        record = databases.register_database(
            services,
            databases.NewDatabase(
                name=registration.name,
                url=registration.url,
                replica_url=registration.replica_url,
                schedule=registration.schedule,
                retention=registration.retention,
                compression=registration.compression,
                runner=registration.runner,
                alerting=registration.alerting,
            ),
        )
        return Response(
            status_code=201,
            content_type=content_types.APPLICATION_JSON,
            body=database_view(record, None, services.clock()),
        )

    @router.get(
        "/v1/databases/<db>",
        operation_id="getDatabase",
        summary="Show a database",
        tags=TAGS,
        responses=answers(200, "The database"),
    )
    def get_database(db: DatabaseParam) -> Database:
        record, last = databases.show_database(services, db)
        return database_view(record, last, services.clock())

    @router.patch(
        "/v1/databases/<db>",
        operation_id="updateDatabase",
        summary="Change a database's URLs, schedule, retention, compression, runner, alerts or drills",
        tags=TAGS,
        responses=answers(200, "The changed database", 400),
    )
    def update_database(db: DatabaseParam, changes: DatabaseChanges) -> Database:
        record = databases.change_database(
            services,
            db,
            databases.DatabaseChanges(
                url=changes.url,
                replica_url=changes.replica_url,
                remove_replica=changes.removes_replica,
                schedule=changes.schedule.model_dump(exclude_none=True) if changes.schedule else {},
                retention=(
                    changes.retention.model_dump(exclude_none=True) if changes.retention else {}
                ),
                compression=changes.compression,
                runner=changes.runner,
                alerting=changes.alerting.model_dump(exclude_none=True) if changes.alerting else {},
                verification=(
                    changes.verification.model_dump(exclude_unset=True)
                    if changes.verification
                    else {}
                ),
            ),
        )
        return view(record)

    @router.delete(
        "/v1/databases/<db>",
        operation_id="deleteDatabase",
        summary="Remove a database: its schedule stops, its backups expire under its policy",
        tags=TAGS,
        responses=answers(204, "Removed"),
    )
    def delete_database(db: DatabaseParam) -> Response[None]:
        databases.remove_database(services, db)
        return Response(status_code=204)

    return router
