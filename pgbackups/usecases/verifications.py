"""Restore drills: a done backup restored into a throwaway server of its source's major on
the Fargate runner (the only runner given the server binaries), checked, and the evidence
kept: the verification's record, a JSON report beside the backup in S3 (its SHA-256 on
the record), the backup's `verified_at` and `verification`, an event.

A drill never connects to the source database or to any target: only to its own
throwaway server (`pgbackups.postgres.drill`), whose files are gone when it ends.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import (
    BackupNotDone,
    BackupNotFound,
    BackupNotStarted,
    Conflict,
    NotSupported,
    PgBackupsError,
    VerificationInProgress,
)
from pgbackups.domain.models import (
    DEFAULT_URL_LIFETIME,
    BackupRecord,
    BackupRequest,
    DatabaseRecord,
    RunnerName,
    error_text,
    to_rfc3339,
)
from pgbackups.domain.runners import RunnerFailed
from pgbackups.domain.verifications import (
    CheckResult,
    VerificationRecord,
    VerificationState,
    verification_due,
)
from pgbackups.postgres.cluster import ClusterFailed, reachable_storage
from pgbackups.postgres.drill import DrillFailed, DrillOutcome, drill_archive
from pgbackups.postgres.restore import RestoreFailed
from pgbackups.postgres.servers import ServerNotFound, server_install
from pgbackups.services import Services
from pgbackups.usecases.archive_feed import archive_feed
from pgbackups.usecases.backup import DEADLINE_MARGIN_SECONDS, LATEST, find_backup

logger = Logger(child=True)

NO_FARGATE_FOR_DRILLS = (
    "drills start a PostgreSQL server, which only the Fargate runner can: this deployment "
    "has none (deploy with DatabaseSubnetIds and DatabaseSecurityGroupIds for its tasks)"
)
REPORT_KIND = "verification-report"


def server_major(server_version: str | None) -> int | None:
    """The major of a version as PostgreSQL reports it (`18.1 (Debian …)`, `9.6.24`)."""
    if not server_version:
        return None
    head = server_version.strip().split()[0].split(".")[0]
    return int(head) if head.isdigit() else None


# -- requested (the API, the dispatcher) ---------------------------------------------------


def request_verification(
    services: Services,
    database: str,
    *,
    backup_id: str | None = None,
    target_time: str | None = None,
) -> VerificationRecord:
    """Record a `scheduled` drill of a done backup (by default the newest) and start it on
    the Fargate runner; nothing is left locked when the start fails."""
    record = services.catalog.get_database(database)  # DatabaseNotFound
    if target_time is not None:
        raise NotSupported(
            "drills of a point in time are not run by the stack yet: drill a backup "
            "(backup_id, or nothing for the newest)",
            field="target_time",
        )
    if services.fargate is None:
        raise NotSupported(NO_FARGATE_FOR_DRILLS)
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
    return _schedule(services, record, backup, major)


def _schedule(
    services: Services, database: DatabaseRecord, backup: BackupRecord, major: int
) -> VerificationRecord:
    assert services.fargate is not None
    record = VerificationRecord.new(
        database.name, services.clock(), backup_id=backup.id,
        source_version=backup.server_version,
    )  # fmt: skip
    state = database.verification_state or VerificationState()
    services.verifications.create_verification(
        record,
        state.model_copy(
            update={
                "last_id": record.id,
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
        _finish(services, failed, state, expected_status="scheduled")
        raise BackupNotStarted(reason) from None
    logger.info(
        "drill requested",
        extra={"database": database.name, "verification_id": record.id, "backup_id": backup.id},
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
    return services.archives.object_url(record.report_key, DEFAULT_URL_LIFETIME)


# -- the dispatcher ------------------------------------------------------------------------


def start_due_verification(
    services: Services, database: DatabaseRecord, backups: list[BackupRecord], at: datetime
) -> VerificationRecord | None:
    """The database's drill when its hour is due at `at`: of its newest done backup, on
    the Fargate runner, one at a time. None when not due or nothing to drill."""
    settings = database.verification
    if not settings.enabled or database.removed_at is not None or services.fargate is None:
        return None
    if database.active_verification_id is not None:
        return None
    state = database.verification_state or VerificationState()
    if not verification_due(settings, database.schedule, state.last_at, at):
        return None
    backup = next((b for b in backups if b.status == "done"), None)
    major = server_major(backup.server_version) if backup is not None else None
    if backup is None or major is None:
        logger.info("drill due but no done backup to drill", extra={"database": database.name})
        return None
    try:
        return _schedule(services, database, backup, major)
    except VerificationInProgress:
        return None


def reap_stale_verification(
    services: Services, database: DatabaseRecord, now: datetime
) -> VerificationRecord | None:
    """The database's drill whose runner stopped without a word (killed at its deadline,
    crashed) turned into `failed` and its lock freed: the reaper's rule for every run."""
    if database.active_verification_id is None:
        return None
    try:
        record = services.verifications.get_verification(
            database.name, database.active_verification_id
        )
    except PgBackupsError:
        return None
    reason = record.abandoned_reason(now)
    if reason is None:
        return None
    failed = record.failed(reason, now)
    state = database.verification_state or VerificationState()
    if not _finish(services, failed, state, expected_status=record.status):
        return None
    logger.warning("stale drill reaped", extra={"verification_id": record.id})
    return failed


# -- on the runner -------------------------------------------------------------------------


def run_verification(
    services: Services, request: BackupRequest, *, seconds_left: float, runner: RunnerName
) -> VerificationRecord | None:
    """What the Fargate task does with a drill's request: the archive streamed from S3
    (its digest checked) into a throwaway server of the source's major, every check run,
    the report stored, the record finished. None when there is nothing to do (a retry)."""
    started = time.monotonic()
    now = services.clock()
    record = services.verifications.start_verification(
        request.database, request.backup_id, now, runner=runner,
        deadline_at=now + timedelta(seconds=seconds_left),
    )  # fmt: skip
    if record is None:
        logger.info("drill is not scheduled any more: nothing to do")
        return None
    database = services.catalog.get_database(request.database, include_removed=True)
    state = database.verification_state or VerificationState()
    try:
        seconds = seconds_left - DEADLINE_MARGIN_SECONDS - (time.monotonic() - started)
        record = _drill(services, database, record, max(seconds, 1.0))
    except (RestoreFailed, ServerNotFound, ClusterFailed, DrillFailed) as error:
        record = record.failed(error_text(str(error)), services.clock())
    except PgBackupsError as error:
        record = record.failed(error_text(error.message), services.clock())
    except Exception as error:
        logger.exception("drill failed unexpectedly")
        record = record.failed(
            error_text(f"the drill could not run: {error}".strip()), services.clock()
        )
    if not _finish(services, record, state, expected_status="running"):
        logger.warning("drill was given up meanwhile")
        return services.verifications.get_verification(record.database, record.id)
    return record


def _drill(
    services: Services, database: DatabaseRecord, record: VerificationRecord, seconds: float
) -> VerificationRecord:
    assert record.backup_id is not None
    try:
        backup = services.catalog.get_backup(record.database, record.backup_id)
    except BackupNotFound:
        raise RestoreFailed(f"backup {record.backup_id} was deleted before the drill ran") from None
    if backup.status != "done":
        raise RestoreFailed(f"backup {backup.id} is {backup.status} now: nothing was drilled")
    major = server_major(backup.server_version)
    if major is None:
        raise RestoreFailed(f"backup {backup.id} does not record its server's version")
    install = server_install(major, services.settings.server_dirs)  # ServerNotFound
    deadline = time.monotonic() + seconds
    smoke_queries = database.verification.smoke_queries
    # In the task's storage; the throwaway server runs as another user when the task is
    # root (postgres/cluster.py), who must be able to enter it.
    work_dir = Path(tempfile.mkdtemp(prefix="pgbackups-drill-", dir=reachable_storage()))
    try:
        work_dir.chmod(0o711)
        outcome = drill_archive(
            services.tools, install, work_dir, archive_feed(services, backup, deadline),
            smoke_queries=smoke_queries, timeout=seconds,
        )  # fmt: skip
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    finished = _judged(record, outcome, services.clock())
    report = _report(finished, backup, outcome, [q.model_dump() for q in smoke_queries])
    key = finished.report_object_key
    services.archives.put_bytes(key, report, {"sha256": _sha256(report)}, REPORT_KIND)
    logger.info(
        "drill finished",
        extra={"verification_id": record.id, "status": finished.status, "failed": finished.failed_checks},
    )  # fmt: skip
    return finished.model_copy(update={"report_key": key, "report_sha256": _sha256(report)})


def _judged(record: VerificationRecord, outcome: DrillOutcome, at: datetime) -> VerificationRecord:
    checks = [CheckResult(name=c.name, passed=c.passed, detail=c.detail) for c in outcome.checks]
    failed = [c for c in checks if not c.passed]
    error = None
    if failed:
        error = error_text("; ".join(f"{c.name}: {c.detail}" for c in failed))
    return record.model_copy(
        update={
            "status": "failed" if failed or not checks else "passed",
            "finished_at": at,
            "checks": checks,
            "tables": len(outcome.tables),
            "rows": sum(t.rows for t in outcome.tables),
            "restore_seconds": round(outcome.restore_seconds, 3),
            "server_version": outcome.server_version,
            "error": error if checks else "the drill ran no check",
        }
    )


def _report(
    record: VerificationRecord,
    backup: BackupRecord,
    outcome: DrillOutcome,
    smoke_queries: list[dict[str, Any]],
) -> bytes:
    """The evidence: every check, every table's rows, the smoke queries, as JSON."""
    report = {
        "verification": record.model_dump(mode="json", exclude={"report_key", "report_sha256"}),
        "backup": {
            "id": backup.id,
            "name": backup.name,
            "created_at": to_rfc3339(backup.created_at),
            "size": backup.size,
            "sha256": backup.sha256,
            "server_version": backup.server_version,
            "pg_dump_version": backup.pg_dump_version,
        },
        "checks": [c.model_dump() for c in record.checks],
        "tables": [{"schema": t.schema, "table": t.table, "rows": t.rows} for t in outcome.tables],
        "smoke_queries": smoke_queries,
        "warnings": list(outcome.warnings),
    }
    return json.dumps(report, indent=2, sort_keys=True).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _finish(
    services: Services,
    record: VerificationRecord,
    state: VerificationState,
    *,
    expected_status: str,
) -> bool:
    """Record the finished drill and free the database's lock; then mark its backup and
    announce it. False when it was finished by someone else meanwhile."""
    summary = state.model_copy(
        update={
            "last_id": record.id,
            "last_status": record.status,
            "last_at": record.created_at,
            "last_passed_at": record.finished_at if record.passed else state.last_passed_at,
            "restore_seconds": (record.restore_seconds if record.passed else state.restore_seconds),
        }
    )
    if not services.verifications.finish_verification(
        record, summary, expected_status=expected_status
    ):
        return False
    if record.backup_id is not None and record.started_at is not None:  # the drill ran
        try:
            services.verifications.mark_backup(
                record.database, record.backup_id, record.finished_at or services.clock(),
                "passed" if record.passed else "failed",
            )  # fmt: skip
        except Exception:
            logger.exception(
                "could not mark the drilled backup", extra={"verification_id": record.id}
            )
    try:
        services.events.publish_verification(record)
    except Exception:
        logger.exception(
            "could not publish the drill's event", extra={"verification_id": record.id}
        )
    return True
