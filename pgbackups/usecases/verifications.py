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
import random
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
    InvalidInput,
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
from pgbackups.domain.recovery import recoverable_ranges
from pgbackups.domain.runners import RunnerFailed
from pgbackups.domain.smoke import SmokeQuery
from pgbackups.domain.verifications import (
    CheckResult,
    VerificationKind,
    VerificationRecord,
    VerificationState,
    point_in_time_due,
    random_second,
    verification_due,
)
from pgbackups.postgres.checks import Check, check_server
from pgbackups.postgres.cluster import ClusterFailed, reachable_storage
from pgbackups.postgres.drill import DrillOutcome, Phases, drill_archive
from pgbackups.postgres.restore import RestoreFailed
from pgbackups.postgres.servers import ServerNotFound, server_install
from pgbackups.postgres.throwaway import DrillFailed, handle_of
from pgbackups.postgres.throwaway import server_version as drill_server_version
from pgbackups.services import Services
from pgbackups.usecases.archive_feed import archive_feed
from pgbackups.usecases.backup import DEADLINE_MARGIN_SECONDS, LATEST, find_backup
from pgbackups.usecases.pitr.recover import recovered_cluster
from pgbackups.usecases.pitr.restore_plan import parse_target_time, plan_restore

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
        return _schedule(
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
    return _schedule(services, record, backup.id, backup.server_version, major)


def version_text(server_version_num: int) -> str:
    """`180001` as PostgreSQL writes it: `18.1`."""
    return f"{server_version_num // 10000}.{server_version_num % 10000}"


def _schedule(
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
        _finish(services, failed, state, expected_status="scheduled")
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


# -- the dispatcher ------------------------------------------------------------------------


def start_due_verification(
    services: Services, database: DatabaseRecord, backups: list[BackupRecord], at: datetime
) -> VerificationRecord | None:
    """The database's drill when its hour is due at `at`: of its newest done backup, on
    the Fargate runner, one at a time; with continuous backups, the next run drills a
    random second of the newest recoverable range. None when nothing is due."""
    settings = database.verification
    if not settings.enabled or database.removed_at is not None or services.fargate is None:
        return None
    if database.active_verification_id is not None:
        return None
    state = database.verification_state or VerificationState()
    try:
        if verification_due(settings, database.schedule, state.last_at, at):
            return _drill_newest_backup(services, database, backups)
        if point_in_time_due(state, at):
            return _drill_random_point_in_time(services, database)
    except VerificationInProgress:
        return None
    return None


def _drill_newest_backup(
    services: Services, database: DatabaseRecord, backups: list[BackupRecord]
) -> VerificationRecord | None:
    backup = next((b for b in backups if b.status == "done"), None)
    major = server_major(backup.server_version) if backup is not None else None
    if backup is None or major is None:
        logger.info("drill due but no done backup to drill", extra={"database": database.name})
        return None
    return _schedule(services, database, backup.id, backup.server_version, major)


def _drill_random_point_in_time(
    services: Services, database: DatabaseRecord
) -> VerificationRecord | None:
    """A drill of a random second of the newest recoverable range, when continuous
    backups are on and have one."""
    state = services.pitr.get_state(database.name)
    if state is None or not state.enabled:
        return None
    ranges = recoverable_ranges(
        services.pitr.chains(database.name), services.pitr.base_backups(database.name)
    )
    if not ranges:
        return None
    newest = ranges[-1]
    moment = random_second(newest.start, newest.end, random.uniform)
    return _schedule(
        services, database, newest.base.id, version_text(newest.chain.server_version_num),
        newest.chain.server_major, target_time=moment, kind="point_in_time",
    )  # fmt: skip


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
    """The drill run, judged, and its report stored beside what it drilled."""
    smoke_queries = database.verification.smoke_queries
    deadline = time.monotonic() + seconds
    if record.kind == "point_in_time":
        outcome, beside, source = _drill_point_in_time(services, record, smoke_queries, deadline)
    else:
        outcome, beside, source = _drill_backup(services, record, smoke_queries, deadline)
    finished = _judged(record, outcome, services.clock())
    report = _report(finished, source, outcome, [q.model_dump() for q in smoke_queries])
    key = finished.report_key_beside(beside)
    services.archives.put_bytes(key, report, {"sha256": _sha256(report)}, REPORT_KIND)
    logger.info(
        "drill finished",
        extra={"verification_id": record.id, "status": finished.status, "failed": finished.failed_checks},
    )  # fmt: skip
    return finished.model_copy(update={"report_key": key, "report_sha256": _sha256(report)})


def _drill_backup(
    services: Services,
    record: VerificationRecord,
    smoke_queries: list[SmokeQuery],
    deadline: float,
) -> tuple[DrillOutcome, str, dict[str, Any]]:
    """A backup's archive, streamed from the bucket (its digest checked), restored into a
    throwaway server of its source's major and checked."""
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
    # In the task's storage; the throwaway server runs as another user when the task is
    # root (postgres/cluster.py), who must be able to enter it.
    work_dir = Path(tempfile.mkdtemp(prefix="pgbackups-drill-", dir=reachable_storage()))
    try:
        work_dir.chmod(0o711)
        outcome = drill_archive(
            services.tools, install, work_dir, archive_feed(services, backup, deadline),
            smoke_queries=smoke_queries, timeout=max(deadline - time.monotonic(), 1.0),
        )  # fmt: skip
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    source = {
        "backup": {
            "id": backup.id,
            "name": backup.name,
            "created_at": to_rfc3339(backup.created_at),
            "size": backup.size,
            "sha256": backup.sha256,
            "server_version": backup.server_version,
            "pg_dump_version": backup.pg_dump_version,
        }
    }
    return outcome, backup.object_key, source


def _drill_point_in_time(
    services: Services,
    record: VerificationRecord,
    smoke_queries: list[SmokeQuery],
    deadline: float,
) -> tuple[DrillOutcome, str, dict[str, Any]]:
    """The continuous backups recovered to the drill's point in time in the task's storage
    (every file checked against its recorded digest), promoted, and checked where they
    stand: a failed recovery (a WAL file missing, say) is a failed `restore` check."""
    plan = plan_restore(services, record.database, record.target_time, limit=1)
    install = server_install(plan.point.chain.server_major, services.settings.server_dirs)
    base = plan.point.base
    point: dict[str, Any] = {
        "target_time": to_rfc3339(record.target_time) if record.target_time else "latest",
        "base_backup_id": base.id,
        "chain_id": plan.point.chain.id,
    }
    phases = Phases()
    try:
        with recovered_cluster(
            services, record.database, record.target_time, reachable_storage(),
            install=install, deadline=deadline,
        ) as recovered:  # fmt: skip
            # The base backup and WAL fetched, replayed, the server started: one phase.
            restore_seconds = phases.lap("restore")
            server = handle_of(recovered.cluster)
            reached = to_rfc3339(recovered.reached) if recovered.reached else "no commit replayed"
            point |= {"reached": reached, "wal_files": recovered.wal_files}
            checks, tables = check_server(
                server, recovered.database_name, smoke_queries=smoke_queries,
                timeout=max(deadline - time.monotonic(), 1.0),
            )  # fmt: skip
            recovery = Check(
                "restore",
                True,
                f"recovered from base backup {base.id} and {recovered.wal_files} WAL files "
                f"to {reached}, promoted",
                restore_seconds,
            )
            outcome = DrillOutcome(
                checks=[recovery, *checks],
                tables=tables,
                restore_seconds=restore_seconds,
                server_version=drill_server_version(server),
            )
            phases.lap("checks")
        phases.lap("stop")
    except ClusterFailed as error:
        restore_seconds = phases.lap("restore")
        outcome = DrillOutcome(
            checks=[
                Check("restore", False, error_text(f"recovery failed: {error}"), restore_seconds)
            ],
            tables=[],
            restore_seconds=restore_seconds,
            server_version="",
        )
    outcome.phases = phases.total()
    return outcome, base.object_key, {"point_in_time": point}


def _judged(record: VerificationRecord, outcome: DrillOutcome, at: datetime) -> VerificationRecord:
    checks = [
        CheckResult(name=c.name, passed=c.passed, detail=c.detail, seconds=round(c.seconds, 3))
        for c in outcome.checks
    ]
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
            "phases": {name: round(seconds, 3) for name, seconds in outcome.phases.items()},
            "server_version": outcome.server_version or None,
            "error": error if checks else "the drill ran no check",
        }
    )


def _report(
    record: VerificationRecord,
    source: dict[str, Any],
    outcome: DrillOutcome,
    smoke_queries: list[dict[str, Any]],
) -> bytes:
    """The evidence: what was drilled, every check, every table's rows, the smoke
    queries, as JSON."""
    report = {
        "verification": record.model_dump(mode="json", exclude={"report_key", "report_sha256"}),
        **source,
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
            "last_kind": record.kind,
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
    if record.kind == "backup" and record.backup_id is not None and record.started_at:
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
