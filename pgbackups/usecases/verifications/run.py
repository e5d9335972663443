"""A restore drill run on the Fargate runner: a done backup restored into a throwaway
server of its source's major, or the continuous backups recovered to a point in time,
checked, and the evidence kept: the verification's record, a JSON report beside what
was drilled in S3 (its SHA-256 on the record).

A drill never connects to the source database or to any target: only to its own
throwaway server (`pgbackups.postgres.throwaway`), whose files are gone when it ends.
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

from pgbackups.domain.errors import BackupNotFound, PgBackupsError
from pgbackups.domain.models import (
    BackupRequest,
    DatabaseRecord,
    RunnerName,
    error_text,
    to_rfc3339,
)
from pgbackups.domain.smoke import SmokeQuery
from pgbackups.domain.verifications import CheckResult, VerificationRecord, VerificationState
from pgbackups.postgres.checks import Check, check_server
from pgbackups.postgres.cluster import ClusterFailed, reachable_storage
from pgbackups.postgres.drill import DrillOutcome, Phases, drill_archive
from pgbackups.postgres.restore import RestoreFailed
from pgbackups.postgres.servers import ServerNotFound, server_install
from pgbackups.postgres.throwaway import DrillFailed, handle_of
from pgbackups.postgres.throwaway import server_version as drill_server_version
from pgbackups.services import Services
from pgbackups.usecases.archive_feed import archive_feed
from pgbackups.usecases.backup import DEADLINE_MARGIN_SECONDS
from pgbackups.usecases.pitr.recover import recovered_cluster
from pgbackups.usecases.pitr.restore_plan import plan_restore
from pgbackups.usecases.verifications.finish import record_finished
from pgbackups.usecases.verifications.request import server_major

logger = Logger(child=True)

REPORT_KIND = "verification-report"


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
    if not record_finished(services, record, state, expected_status="running"):
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
