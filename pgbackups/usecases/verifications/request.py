"""A restore drill requested: of a done backup or of a point in time of the continuous
backups, recorded `scheduled` and started on the Fargate runner (the only runner given
the server binaries); and the drills read back (a page, one, its report's URL)."""

from __future__ import annotations

from datetime import datetime

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import (
    BackupNotDone,
    BackupNotFound,
    BackupNotStarted,
    Conflict,
    InvalidInput,
    NotSupported,
)
from pgbackups.domain.models import DEFAULT_URL_LIFETIME, BackupRequest, DatabaseRecord
from pgbackups.domain.runners import RunnerFailed
from pgbackups.domain.verifications import VerificationKind, VerificationRecord, VerificationState
from pgbackups.services import Services
from pgbackups.usecases.backup import LATEST, find_backup
from pgbackups.usecases.pitr.restore_plan import parse_target_time, plan_restore
from pgbackups.usecases.verifications.finish import record_finished

logger = Logger(child=True)

NO_FARGATE_FOR_DRILLS = (
    "drills start a PostgreSQL server, which only the Fargate runner can: this deployment "
    "has none (deploy with DatabaseSubnetIds and DatabaseSecurityGroupIds for its tasks)"
)


def server_major(server_version: str | None) -> int | None:
    """The major of a version as PostgreSQL reports it (`18.1 (Debian …)`, `9.6.24`)."""
    if not server_version:
        return None
    head = server_version.strip().split()[0].split(".")[0]
    return int(head) if head.isdigit() else None


def request_verification(
    services: Services,
    database: str,
    *,
    backup_id: str | None = None,
    target_time: str | None = None,
) -> VerificationRecord:
    """Record a `scheduled` drill of a done backup (by default the newest), or of a point
    in time of the continuous backups, and start it on the Fargate runner; nothing is
    left locked when the start fails."""
    if backup_id is not None and target_time is not None:
        raise InvalidInput("give at most one of backup_id and target_time", field="target_time")
    record = services.catalog.get_database(database)  # DatabaseNotFound
    if services.fargate is None:
        raise NotSupported(NO_FARGATE_FOR_DRILLS)
    if target_time is not None:
        moment = parse_target_time(target_time)
        point = plan_restore(services, database, moment, limit=1).point  # outside: 422
        return start_drill(
            services, record, point.base.id, version_text(point.chain.server_version_num),
            point.chain.server_major, target_time=moment, kind="point_in_time",
        )  # fmt: skip
    backup = find_backup(services, database, backup_id or LATEST)  # BackupNotFound
    if backup.status != "done":
        raise BackupNotDone(f"backup {backup.id} is {backup.status}: only a done one is drilled")
    major = server_major(backup.server_version)
    if major is None:
        raise NotSupported(
            f"backup {backup.id} does not record its server's version: its server's major "
            "is not known, so no server can restore it",
            field="backup_id",
        )
    return start_drill(services, record, backup.id, backup.server_version, major)


def version_text(server_version_num: int) -> str:
    """`180001` as PostgreSQL writes it: `18.1`."""
    return f"{server_version_num // 10000}.{server_version_num % 10000}"


def start_drill(
    services: Services,
    database: DatabaseRecord,
    source_id: str,
    source_version: str | None,
    major: int,
    *,
    target_time: datetime | None = None,
    kind: VerificationKind = "backup",
) -> VerificationRecord:
    assert services.fargate is not None
    record = VerificationRecord.new(
        database.name, services.clock(), backup_id=source_id, source_version=source_version,
        target_time=target_time, kind=kind,
    )  # fmt: skip
    state = database.verification_state or VerificationState()
    services.verifications.create_verification(
        record,
        state.model_copy(
            update={
                "last_id": record.id,
                "last_kind": record.kind,
                "last_status": record.status,
                "last_at": record.created_at,
            }
        ),
    )  # VerificationInProgress
    try:
        services.fargate.start(
            BackupRequest(
                database=database.name, backup_id=record.id, kind="verify", server_major=major
            )
        )
    except Exception as error:  # the lock may not stay
        logger.exception("the drill could not be started", extra={"verification_id": record.id})
        reason = f"the drill could not be started ({type(error).__name__})"
        if isinstance(error, RunnerFailed):
            reason = f"the drill could not be started: {error}"
        failed = record.failed(reason, services.clock())
        record_finished(services, failed, state, expected_status="scheduled")
        raise BackupNotStarted(reason) from None
    logger.info(
        "drill requested",
        extra={"database": database.name, "verification_id": record.id, "kind": kind},
    )
    return record


def verifications_page(
    services: Services, database: str, *, limit: int, cursor: str | None
) -> tuple[list[VerificationRecord], str | None]:
    services.catalog.get_database(database, include_removed=True)  # DatabaseNotFound
    return services.verifications.list_verifications(database, limit=limit, cursor=cursor)


def show_verification(
    services: Services, database: str, verification_id: str
) -> VerificationRecord:
    services.catalog.get_database(database, include_removed=True)  # DatabaseNotFound
    return services.verifications.get_verification(database, verification_id)


def report_url(services: Services, database: str, verification_id: str) -> str:
    """A presigned GET of the drill's JSON report; Conflict while it has none."""
    record = show_verification(services, database, verification_id)
    if record.report_key is None:
        raise Conflict(
            f"verification {record.id} is {record.status} and has no report"
            + (" yet" if record.active else "")
        )
    if record.kind == "backup" and record.backup_id is not None:
        try:
            services.catalog.get_backup(database, record.backup_id)
        except BackupNotFound:
            raise Conflict(
                f"the report of verification {record.id} was deleted with its backup "
                f"{record.backup_id}"
            ) from None
    return services.archives.object_url(record.report_key, DEFAULT_URL_LIFETIME)
