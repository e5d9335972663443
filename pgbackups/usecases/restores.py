"""Restores run where the backups are: a done backup's archive streamed from S3 into
pg_restore on the backups' runner (the backup function, or the Fargate task when the
backup outgrew Lambda), never through the user's machine; a point in time recovered and
moved into the target on the Fargate task, which has the server binaries
(`pitr.restore_run`).

The API checks the target with a real connection, then keeps its URL only in a
secret of the restore's own (Secrets Manager, `<prefix>/restores/<id>`), which the
runner reads and deletes when the run ends, whatever happened. A restore into the
backed-up database itself needs its name as confirmation; one restore at a time per
target. A restore that does not finish says its target may be partial.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import (
    BackupNotDone,
    BackupNotStarted,
    ConfirmationRequired,
    ConnectionFailed,
    ConnectionParameterNotAllowed,
    InvalidInput,
    NotSupported,
    PgBackupsError,
)
from pgbackups.domain.models import BackupRecord, BackupRequest, RunnerName, error_text
from pgbackups.domain.restores import RestoreRecord
from pgbackups.domain.runners import RunnerFailed
from pgbackups.postgres import probe
from pgbackups.postgres.restore import (
    RestoreFailed,
    RestoreOutcome,
    RestoreProgress,
    Target,
    count_entries,
    count_streamed_entries,
    run_pg_restore,
)
from pgbackups.postgres.urls import Connection, registered_connection, scrub
from pgbackups.services import Services
from pgbackups.settings import Settings
from pgbackups.usecases.archive_feed import archive_feed
from pgbackups.usecases.backup import (
    DEADLINE_MARGIN_SECONDS,
    PROGRESS_SECONDS,
    find_backup,
    runner_for,
)
from pgbackups.usecases.pitr.recover import source_major
from pgbackups.usecases.pitr.restore_plan import parse_target_time
from pgbackups.usecases.pitr.restore_run import restore_point_in_time

logger = Logger(child=True)


@dataclass(frozen=True)
class NewRestore:
    """A restore to run; exactly one of `backup_id` and `target_time` is set."""

    target_url: str
    backup_id: str | None = None
    target_time: str | None = None
    tables: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    clean: bool = True
    confirm: str | None = None

    def __repr__(self) -> str:  # never print a URL by accident
        return f"NewRestore(backup_id={self.backup_id!r}, target_time={self.target_time!r})"


def target_address(connection: Connection) -> str:
    """`host:port/dbname` as libpq reads the URL (its defaults filled in)."""
    parameters = connection.parameters
    host = parameters.get("host") or "localhost"
    port = parameters.get("port") or "5432"
    return f"{host}:{port}/{connection.database}"


def request_restore(services: Services, database: str, new: NewRestore) -> RestoreRecord:
    """Check the request and its target, record the restore `scheduled`, keep the target's
    URL in the restore's secret and ask the runner to run it; nothing is left behind
    when any step refuses."""
    if (new.backup_id is None) == (new.target_time is None):
        raise InvalidInput(
            "give exactly one of backup_id (an id or `latest`) and target_time",
            field="backup_id",
        )
    services.catalog.get_database(database)  # DatabaseNotFound
    backup: BackupRecord | None = None
    moment: datetime | None = None
    if new.backup_id is not None:
        backup = find_backup(services, database, new.backup_id)
        if backup.status != "done":
            raise BackupNotDone(f"backup {backup.id} is {backup.status}: only a done one restores")
    else:
        assert new.target_time is not None
        moment = parse_target_time(new.target_time)
        if services.fargate is None:
            raise NotSupported(
                "restores to a point in time run on the Fargate runner, which this deployment "
                "does not have (no subnets for its tasks): use `pgbackups pitr-restore` on "
                "your machine, or restore a backup (backup_id)",
                field="target_time",
            )
        major = source_major(services, database, moment)  # outside the ranges: 422
    target = _checked_target(new.target_url)
    address = target_address(target)
    source = registered_connection(services.secrets.get(database).url)
    if address == target_address(source) and new.confirm != database:
        what = "the backup's" if backup is not None else "the recovered database's"
        raise ConfirmationRequired(
            f"the target is {database} itself: its objects are replaced by {what}; "
            f'send "confirm": "{database}" to restore in place',
            field="confirm",
        )
    record = RestoreRecord.new(
        database, backup.id if backup is not None else None, address, services.clock(),
        tables=list(new.tables), schemas=list(new.schemas), clean=new.clean,
        target_time=moment,
    )  # fmt: skip
    services.restores.create_restore(record)  # RestoreInProgress
    try:
        services.secrets.put_restore_target(record.id, database, new.target_url)
        request = BackupRequest(database=database, backup_id=record.id, kind="restore")
        if backup is not None:
            runner = runner_for(services, database, recent=[backup])
        else:  # only the task has the server binaries recovery starts
            assert services.fargate is not None
            runner = services.fargate
            request = request.model_copy(update={"server_major": major})
        runner.start(request)
    except Exception as error:  # nothing may stay: the secret, the target's lock
        logger.exception("the restore could not be started", extra={"restore_id": record.id})
        reason = f"the restore could not be started ({type(error).__name__})"
        if isinstance(error, RunnerFailed):
            reason = f"the restore could not be started: {error}"
        _delete_secret(services, record.id)
        failed = record.failed(reason, services.clock())
        if services.restores.finish_restore(failed, expected_status="scheduled"):
            _publish(services, failed)
        raise BackupNotStarted(reason) from None
    logger.info(
        "restore requested",
        extra={"database": database, "restore_id": record.id, "runner": runner.name},
    )
    return record


def _checked_target(url: str) -> Connection:
    """The target as libpq reads it, after a real connection accepted it (422 otherwise,
    in `pgbackups.postgres.urls`' words: never the password)."""
    try:
        target = registered_connection(url)
        probe.probe(target)
    except (ConnectionFailed, ConnectionParameterNotAllowed) as refused:
        raise type(refused)(
            f"target_url: {refused.message}", field="target_url", **refused.details
        ) from None
    return target


def restores_page(
    services: Services, database: str, *, limit: int, cursor: str | None
) -> tuple[list[RestoreRecord], str | None]:
    services.catalog.get_database(database, include_removed=True)  # DatabaseNotFound
    return services.restores.list_restores(database, limit=limit, cursor=cursor)


def show_restore(services: Services, database: str, restore_id: str) -> RestoreRecord:
    services.catalog.get_database(database, include_removed=True)  # DatabaseNotFound
    return services.restores.get_restore(database, restore_id)


# -- on the runner ------------------------------------------------------------------------


def run_restore(
    services: Services, request: BackupRequest, *, seconds_left: float, runner: RunnerName
) -> RestoreRecord | None:
    """What the runner does with a restore's request: the archive streamed from S3 into
    pg_restore (or, for a point in time, the recovered database moved into the target:
    `pitr.restore_run`), progress recorded as it goes, the secret deleted at the end.

    None when there is nothing to do (a retried invocation, a restore given up)."""
    started = time.monotonic()
    now = services.clock()
    record = services.restores.start_restore(
        request.database, request.backup_id, now, runner=runner,
        deadline_at=now + timedelta(seconds=seconds_left),
    )  # fmt: skip
    if record is None:
        logger.info("restore is not scheduled any more: nothing to do")
        return None
    done = _Progress()
    url: str | None = None
    try:
        url = services.secrets.restore_target(record.id)
        if url is None:
            raise RestoreFailed("the target's URL was deleted before the restore ran")
        seconds = seconds_left - DEADLINE_MARGIN_SECONDS - (time.monotonic() - started)
        recorder = _ProgressRecorder(services, record)
        if record.kind == "point_in_time":
            outcome = restore_point_in_time(
                services, record, Target.registered(url), done, seconds,
                mark_started=done.mark_started, on_wal=recorder.wal, on_entries=recorder.entries,
            )  # fmt: skip
            restored = _Restored(outcome)
        else:
            restored = _restore(services, record, Target.registered(url), done, recorder, seconds)
        record = _done(services, record, done, restored)
    except (RestoreFailed, PgBackupsError) as error:
        reason = error.message if isinstance(error, PgBackupsError) else str(error)
        record = _failed(services, record, scrub(reason, url) if url else reason, done)
    except Exception as error:
        logger.exception("restore failed unexpectedly")
        record = _failed(services, record, f"internal error ({type(error).__name__})", done)
    finally:
        _delete_secret(services, record.id)
    _publish(services, record)
    return record


@dataclass(frozen=True)
class _Restored:
    """What a restore's step did: pg_restore's outcome, the entries it had to restore
    (when counted), and how it went (for the log)."""

    outcome: RestoreOutcome
    total: int | None = None
    how: dict[str, object] = field(default_factory=dict)


def _restore(
    services: Services,
    record: RestoreRecord,
    target: Target,
    done: _Progress,
    recorder: _ProgressRecorder,
    seconds_left: float,
) -> _Restored:
    """The backup's archive restored into the target: streamed from S3 into one
    pg_restore, or, on a Fargate task with several vCPUs, downloaded to the task's
    storage (checked against its SHA-256 first) and restored by `pg_restore --jobs`."""
    assert record.backup_id is not None
    backup = services.catalog.get_backup(record.database, record.backup_id)
    if backup.status != "done":
        raise RestoreFailed(f"backup {backup.id} is {backup.status} now: nothing was restored")
    deadline = time.monotonic() + seconds_left
    phases: dict[str, float] = {}
    jobs = restore_jobs(services.settings) if record.runner == "fargate" else 1
    with contextlib.ExitStack() as cleanup:
        archive: Path | None = None
        if jobs > 1:
            began = time.monotonic()
            archive = _downloaded(services, backup, deadline, cleanup, done.warnings)
            phases["download"] = time.monotonic() - began
        began = time.monotonic()
        if archive is None:
            jobs = 1
            total = count_streamed_entries(
                services.tools, archive_feed(services, backup, None), record.tables, record.schemas
            )
        else:
            total = count_entries(services.tools, archive, record.tables, record.schemas)
        phases["table of contents"] = time.monotonic() - began
        recorder.total = total
        done.started = True
        began = time.monotonic()
        outcome = run_pg_restore(
            services.tools, archive, target, recorder.entries,
            feed=archive_feed(services, backup, deadline) if archive is None else None,
            tables=record.tables, schemas=record.schemas, done=done, clean=record.clean,
            timeout=max(deadline - time.monotonic(), 1.0), jobs=jobs,
        )  # fmt: skip
        phases["pg_restore"] = time.monotonic() - began
    how = {
        "jobs": jobs,
        "streamed": archive is None,
        "phases": {name: round(seconds, 3) for name, seconds in phases.items()},
    }
    return _Restored(outcome, total, how)


# What a target before PostgreSQL 17 answers pg_restore 18, and all it answers.
TRANSACTION_TIMEOUT_WARNING = (
    "the target's PostgreSQL does not know transaction_timeout (pg_restore 18 sets it): "
    "that one error was ignored, nothing else failed"
)


def _done(
    services: Services, record: RestoreRecord, done: _Progress, restored: _Restored
) -> RestoreRecord:
    """The restore recorded `done`, with its entries and warnings."""
    warnings = [*record.warnings, *done.warnings]
    if restored.outcome.ignored_transaction_timeout:
        warnings.append(TRANSACTION_TIMEOUT_WARNING)
    counts = record.progress.model_copy(
        update={"restored": len(done.entries), "total": restored.total}
    )
    finished = record.model_copy(
        update={
            "status": "done",
            "finished_at": services.clock(),
            "progress": counts,
            "warnings": warnings,
        }
    )
    if not _recorded(services, finished):
        return services.restores.get_restore(record.database, record.id)
    logger.info(
        "restore done",
        extra={
            "restore_id": record.id,
            "kind": record.kind,
            "entries": len(done.entries),
            **restored.how,
        },
    )
    return finished


# Room left on the task's storage beside a downloaded archive (the code, pg_restore's own).
STORAGE_MARGIN_BYTES = 256 * 1024 * 1024


def restore_jobs(settings: Settings) -> int:
    """pg_restore's jobs on this machine: one per CPU it may use, no more than the
    task's whole vCPUs (the template's FargateCpu) where they are known; a Fargate
    task may see more CPUs than it is given."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    available = available or os.cpu_count() or 1
    if settings.task_cpu_units > 0:
        available = min(available, settings.task_cpu_units // 1024)
    return max(available, 1)


def _downloaded(
    services: Services,
    backup: BackupRecord,
    deadline: float,
    cleanup: contextlib.ExitStack,
    warnings: list[str],
) -> Path | None:
    """The backup's archive in a file of the task's storage (TMPDIR), checked against its
    recorded SHA-256 before pg_restore sees it, removed when `cleanup` closes; None, with
    a warning, when it does not fit (the restore then streams, one job)."""
    folder = Path(tempfile.mkdtemp(prefix="restore-"))
    cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
    free = shutil.disk_usage(folder).free
    size = backup.size or 0
    if size + STORAGE_MARGIN_BYTES > free:
        warnings.append(
            f"the archive ({size / 1e9:.1f} GB) is larger than the task's free storage "
            f"({free / 1e9:.1f} GB): it was streamed into pg_restore with one job instead of "
            "being downloaded for several (raise the template's FargateEphemeralStorageGiB)"
        )
        logger.warning("archive larger than the task's storage: streamed", extra={"size": size})
        return None
    archive = folder / f"{backup.id}.pgsql"
    with archive.open("xb") as file:
        archive_feed(services, backup, deadline)(file)
    return archive


@dataclass
class _Progress(RestoreProgress):
    """pg_restore's entries done, whether it was started at all (the target touched),
    and the warnings gathered on the way."""

    started: bool = False
    warnings: list[str] = field(default_factory=list)

    def mark_started(self) -> None:
        self.started = True


class _ProgressRecorder:
    """How far the restore got, recorded every few seconds for clients to follow: the WAL
    files fetched of the plan's while a point in time recovers, then pg_restore's entries
    done (of `total`, when the archive's were counted)."""

    def __init__(self, services: Services, record: RestoreRecord) -> None:
        self._services = services
        self._record = record
        self.total: int | None = None
        self._last = 0.0
        self._lock = threading.Lock()

    def wal(self, fetched: int, total: int) -> None:
        self._record_now(fetched, total, last=fetched == total)

    def entries(self, restored: int) -> None:
        self._record_now(restored, self.total)

    def _record_now(self, done: int, total: int | None, *, last: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < PROGRESS_SECONDS and not last:
                return
            self._last = now
        try:
            self._services.restores.record_progress(
                self._record.database, self._record.id, done, total
            )
        except RestoreFailed:  # the task was stopped meanwhile (functions/backup_task.py)
            raise
        except Exception:  # progress is a courtesy: the restore goes on
            logger.exception("could not record the restore's progress")


def _failed(
    services: Services, record: RestoreRecord, reason: str, done: _Progress
) -> RestoreRecord:
    counted = record.progress.model_copy(update={"restored": len(done.entries)})
    so_far = record.model_copy(
        update={"progress": counted, "warnings": [*record.warnings, *done.warnings]}
    )
    if done.started:  # pg_restore ran: it may have dropped, created or filled objects
        failed = so_far.interrupted(error_text(reason), services.clock())
        if done.entries:
            failed.warnings[-1] += f" (the last: {done.entries[-1]})"
    else:  # nothing touched the target
        failed = so_far.failed(error_text(reason), services.clock())
    logger.warning("restore failed", extra={"restore_id": record.id, "reason": failed.error})
    if not _recorded(services, failed):
        return services.restores.get_restore(record.database, record.id)
    return failed


def _recorded(services: Services, ended: RestoreRecord) -> bool:
    """Whether the running restore's end, `ended`, was recorded; not when it was given
    up meanwhile (reaped past its deadline): the record stands as the reaper left it."""
    if services.restores.finish_restore(ended, expected_status="running"):
        return True
    logger.warning("restore was given up meanwhile", extra={"restore_id": ended.id})
    return False


def reap_stale_restores(services: Services, now: datetime) -> list[RestoreRecord]:
    """Restores whose runner stopped without a word (killed at its deadline, crashed)
    turned into `error`, their target freed and their secret deleted: the reaper's rule
    for every run (`Run.abandoned_reason`)."""
    reaped = []
    for lock in services.restores.target_locks():
        try:
            record = services.restores.get_restore(lock.database, lock.restore_id)
        except PgBackupsError:
            continue
        reason = record.abandoned_reason(now)
        if reason is None:
            continue
        if record.status == "running":
            failed = record.interrupted(reason, now)
        else:  # never started: the target was not touched
            failed = record.failed(reason, now)
        if not services.restores.finish_restore(failed, expected_status=record.status):
            continue
        _delete_secret(services, record.id)
        _publish(services, failed)
        logger.warning("stale restore reaped", extra={"restore_id": record.id})
        reaped.append(failed)
    return reaped


def _delete_secret(services: Services, restore_id: str) -> None:
    try:
        services.secrets.delete_restore_target(restore_id)
    except Exception:
        # Logged for the operator: the secret stays under <prefix>/restores/<id>.
        logger.exception("could not delete a restore's secret", extra={"restore_id": restore_id})


def _publish(services: Services, record: RestoreRecord) -> None:
    try:
        services.events.publish_restore(record)
    except Exception:
        logger.exception("could not publish the restore's event", extra={"restore_id": record.id})
