"""Base backups: asked of the backups' runner, taken there.

When one is due (right after enabling, every `base_backup_every_days`, on a new
chain after a break) the capture or enabling records it (`BaseBackupRun`, one per
database at a time) and asks the backups' runner to take it, the backup function or
the Fargate task as for logical backups; `run_base_backup` is what that runner does.
The capture keeps going meanwhile: the slot holds the WAL from the base backup's start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import ChainEnded, PgBackupsError
from pgbackups.domain.models import BackupRequest, RunnerName, error_text, to_rfc3339
from pgbackups.domain.pitr import BaseBackup, BaseBackupRun, PitrState, WalChain
from pgbackups.domain.runners import RunnerFailed
from pgbackups.postgres import wal
from pgbackups.postgres.basebackup import stream_basebackup_to_s3
from pgbackups.postgres.streaming import DumpFailed
from pgbackups.postgres.urls import scrub
from pgbackups.services import Services
from pgbackups.usecases.backup import DEADLINE_MARGIN_SECONDS, runner_for

logger = Logger(child=True)


def request_base_backup(services: Services, database: str, chain_id: str) -> str | None:
    """Record a base backup of `chain_id` as `scheduled` and ask the runner to take it.

    The id of the run started, or None when one is already on its way (at most one
    per database: a conditional write) or the runner could not be asked (the run is
    then recorded as failed, and the capture asks again later). A run past its
    runner's deadline, or never started, is given up first, as the dispatcher's reaper
    gives up a logical backup.
    """
    now = services.clock()
    current = services.pitr.base_backup_run(database)
    if current is not None and current.active:
        reason = current.abandoned_reason(now)
        if reason is None:
            logger.info("a base backup is on its way", extra={"base_backup": current.id})
            return None
        if not services.pitr.fail_base_backup_run(
            current.failed(reason, now), expected_status=current.status
        ):
            return None  # it moved on meanwhile: it is not stuck
        logger.warning("stuck base backup given up", extra={"base_backup": current.id})
    run = BaseBackupRun.new(database, chain_id, now)
    if not services.pitr.create_base_backup_run(run):
        return None
    try:
        runner = runner_for(services, database)
        runner.start(BackupRequest(database=database, backup_id=run.id, kind="base"))
    except Exception as error:  # whatever the runner's fault, the lock must be released
        logger.exception("the base backup could not be started", extra={"base_backup": run.id})
        reason = f"the base backup could not be started ({type(error).__name__})"
        if isinstance(error, RunnerFailed):
            reason = f"the base backup could not be started: {error}"
        services.pitr.fail_base_backup_run(
            run.failed(reason, services.clock()), expected_status="scheduled"
        )
        return None
    logger.info(
        "base backup requested",
        extra={"database": database, "base_backup": run.id, "runner": runner.name},
    )
    return run.id


@dataclass(frozen=True)
class BaseBackupResult:
    status: str  # done, error
    base: BaseBackup | None = None  # done: what was stored
    error: str | None = None  # error: why (no object is left)


def run_base_backup(
    services: Services, request: BackupRequest, *, seconds_left: float, runner: RunnerName
) -> BaseBackupResult | None:
    """What the runner does with a base backup's request: pg_basebackup streamed to S3.

    None when this request has nothing to do (a retried invocation, or a run given
    up before it started). `seconds_left` is the runner's own deadline: recorded, so
    a run killed at it is given up, and pg_basebackup stops before it.
    """
    started = time.monotonic()
    database = request.database
    now = services.clock()
    run = services.pitr.start_base_backup_run(
        database,
        request.backup_id,
        now,
        runner=runner,
        deadline_at=now + timedelta(seconds=seconds_left),
    )
    if run is None:
        logger.info("base backup is not scheduled any more: nothing to do")
        return None
    url: str | None = None
    try:
        chain = _chain_still_current(services, run)
        url = services.secrets.replication_url(database)
        seconds = seconds_left - DEADLINE_MARGIN_SECONDS - (time.monotonic() - started)
        base = _take_base_backup(services, run, chain, url, seconds, runner)
    except (DumpFailed, wal.ReplicationFailed) as error:
        return _base_backup_failed(services, run, scrub(str(error), url) if url else str(error))
    except PgBackupsError as error:
        return _base_backup_failed(services, run, error.message)
    except Exception as error:
        logger.exception("base backup failed unexpectedly")
        return _base_backup_failed(services, run, f"internal error ({type(error).__name__})")
    if not services.pitr.store_base_backup(base):
        # Given up meanwhile (past its deadline): its record says so, no object may stay.
        logger.warning("base backup was given up meanwhile; discarding it")
        _discard(services, base.object_key)
        given_up = services.pitr.base_backup_run(database)
        return BaseBackupResult("error", error=given_up.error if given_up else None)
    # A broken database is `ok` again once its new chain has a base backup.
    was = services.pitr.mark_ok(database, base.chain_id)
    if was is not None:
        _publish_recovered(services, was, base)
    logger.info("base backup stored", extra={"base_backup": base.id, "size": base.size})
    return BaseBackupResult("done", base=base)


def _publish_recovered(services: Services, was: PitrState, base: BaseBackup) -> None:
    """`PITR Recovered`: restoring is possible again from `base`'s end on."""
    detail: dict[str, object] = {
        "database": was.database,
        "chain_id": base.chain_id,
        "base_backup_id": base.id,
        "reason": was.broken_reason,
        "broken_since": to_rfc3339(was.broken_since) if was.broken_since else None,
        "recovered_at": to_rfc3339(base.finished_at),
        "gap_seconds": (
            (base.finished_at - was.broken_since).total_seconds() if was.broken_since else None
        ),
    }
    logger.info("continuous backups recovered", extra={"chain": base.chain_id})
    try:
        services.events.publish_pitr_recovered(detail)
    except Exception:
        logger.exception("could not publish the PITR Recovered event")


def _chain_still_current(services: Services, run: BaseBackupRun) -> WalChain:
    state = services.pitr.get_state(run.database)
    if state is None or not state.enabled or state.chain_id != run.chain_id:
        raise ChainEnded(
            "continuous backups were disabled or their chain broke before this base "
            "backup ran; the capture asks for a new one"
        )
    return services.pitr.get_chain(run.database, run.chain_id)


def _take_base_backup(
    services: Services,
    run: BaseBackupRun,
    chain: WalChain,
    url: str,
    seconds_left: float,
    runner: RunnerName,
) -> BaseBackup:
    before = _flushed(url)
    stored = stream_basebackup_to_s3(
        services.archives, run.object_key, services.tools, url,
        seconds_left=seconds_left, launcher=services.launcher,
    )  # fmt: skip
    # pg_basebackup's own start and end LSN (its backup_manifest's WAL-Ranges); should it
    # not say, the server's flushed positions around the backup bound them.
    start_lsn, end_lsn = stored.wal_range or (before, _flushed(url))
    assert run.started_at is not None
    return BaseBackup(
        id=run.id,
        database=run.database,
        chain_id=chain.id,
        started_at=run.started_at,
        finished_at=services.clock(),
        start_lsn=start_lsn,
        end_lsn=end_lsn,
        timeline=chain.timeline,
        size=stored.size,
        sha256=stored.sha256,
        server_version_num=chain.server_version_num,
        runner=runner,
    )


def _base_backup_failed(services: Services, run: BaseBackupRun, reason: str) -> BaseBackupResult:
    failed = run.failed(error_text(reason), services.clock())
    logger.warning("base backup failed", extra={"reason": failed.error})
    if not services.pitr.fail_base_backup_run(failed, expected_status="running"):
        logger.warning("base backup was given up meanwhile")
    _discard(services, run.object_key)  # the upload was aborted; this covers what came after
    return BaseBackupResult("error", error=failed.error)


def _discard(services: Services, key: str) -> None:
    try:
        services.archives.delete(key)
    except Exception:
        logger.exception("could not delete the object of a failed base backup")


def _flushed(url: str) -> int:
    connection = wal.connect_replication(url)
    try:
        return wal.identify(connection).flushed_lsn
    finally:
        connection.close()
