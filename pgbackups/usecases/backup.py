"""Taking one backup: from `scheduled` to `done` or `error`, honestly.

`schedule_backup` records a backup and starts the backup function; `run_backup`
is what the backup function does with that async invocation. It is idempotent:
only the invocation that moves the record from `scheduled` to `running` does
any work, so Lambda's retries of a finished or running backup change nothing.
Every failure it sees ends in an `error` record with a readable reason, no
object in S3 and the database's lock released; a crash it cannot see (the
Lambda killed at its timeout) is turned into `error` by the dispatcher's reaper.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import BackupNotFound, BackupNotStarted, PgBackupsError
from pgbackups.domain.models import (
    BackupMethod,
    BackupRecord,
    BackupRequest,
    BackupSource,
    BackupStatus,
    ConnectionInfo,
    DatabaseRecord,
    KeptAs,
    RunnerName,
    RunnerSetting,
    error_text,
    expected_archive_size,
)
from pgbackups.domain.runners import RunnerFailed, RunnerLimits, choose_runner
from pgbackups.domain.schedule import PeriodicSlot
from pgbackups.ports import BackupRunner, Catalog
from pgbackups.postgres.dump import dump_command, stream_dump_to_s3
from pgbackups.postgres.probe import ServerFacts, probe
from pgbackups.postgres.streaming import DumpFailed
from pgbackups.postgres.urls import Connection, registered_connection, scrub
from pgbackups.services import Services
from pgbackups.usecases.retention import apply_retention, kept_as

logger = Logger(child=True)

# Time kept back from the Lambda deadline to abort the upload and record the error.
DEADLINE_MARGIN_SECONDS = 30.0
# How often a running backup records how much of its archive is in S3.
PROGRESS_SECONDS = 2.0


def schedule_backup(
    services: Services,
    database: str,
    method: BackupMethod,
    at: datetime,
    *,
    slot: PeriodicSlot | None = None,
    runner_setting: RunnerSetting | None = None,
    recent: list[BackupRecord] | None = None,
) -> BackupRecord:
    """Record a `scheduled` backup (taking the database's lock) and start the backup function.

    A periodic backup comes with its `slot`: the catalog keeps one per local day,
    and the record says when it was due and how late it is. `runner_setting` and
    `recent` (its newest backups first) spare the runner choice its reads when the
    caller has them.

    Raises BackupInProgress / PeriodicBackupExists when the catalog refuses it,
    and BackupNotStarted when the function could not be invoked: the record is
    then finished as `error`, so the lock is not left behind.
    """
    record = BackupRecord.new(database, method, at)
    if slot is not None:
        record = record.model_copy(
            update={
                "scheduled_for": slot.due_at,
                "late_by_seconds": int(slot.late_by.total_seconds()),
            }
        )
    services.catalog.create_backup(record, periodic_day=slot.day if slot else None)
    try:
        runner = runner_for(services, database, runner_setting, recent)
        runner.start(BackupRequest(database=database, backup_id=record.id))
    except Exception as error:  # whatever the runner's fault, the lock must be released
        logger.exception("the backup could not be started", extra={"backup_id": record.id})
        reason = f"the backup function could not be started ({type(error).__name__})"
        if isinstance(error, RunnerFailed):
            reason = f"the backup could not be started: {error}"
        failed = record.model_copy(
            update={"status": "error", "finished_at": services.clock(), "error": reason}
        )
        if not services.catalog.finish_backup(failed, expected_status="scheduled"):
            # The invocation went through after all (the error came with its answer).
            return services.catalog.get_backup(database, record.id)
        publish_backup_event(services, failed)
        raise BackupNotStarted(
            f"backup {record.id} of {database} could not be started and was recorded "
            "as failed; try again in a moment",
            backup_id=record.id,
        ) from None
    logger.info(
        "backup scheduled", extra={"database": database, "backup_id": record.id, "method": method}
    )
    return record


def request_backup(services: Services, database: str) -> BackupRecord:
    """A manual backup: recorded as `scheduled` (taking the lock), then started.

    A removed database takes no new backups (DatabaseNotFound); BackupInProgress
    names the active backup; BackupNotStarted when the runner could not start it.
    """
    services.catalog.get_database(database)
    return schedule_backup(services, database, "manual", services.clock())


LATEST = "latest"  # the newest `done` backup


def find_backup(services: Services, database: str, ref: str) -> BackupRecord:
    """One backup by id, or `latest`: the newest `done` one. Works for a removed
    database too, so its backups can be listed, downloaded and deleted while they expire."""
    if ref == LATEST:
        return services.catalog.latest_done_backup(database)
    return services.catalog.get_backup(database, ref)


@dataclass(frozen=True)
class ShownBackups:
    """Backups as a client sees them: with why retention keeps each (absent: it does not),
    and the cursor of the next page when there is one."""

    backups: list[BackupRecord]
    kept: dict[str, KeptAs] = field(default_factory=dict)
    next_cursor: str | None = None


def backups_page(
    services: Services,
    database: str,
    *,
    limit: int,
    cursor: str | None = None,
    status: BackupStatus | None = None,
    method: BackupMethod | None = None,
) -> ShownBackups:
    """A page of a database's backups, newest first; a removed database's too, while its
    backups expire. DatabaseNotFound if there is no such database."""
    record = services.catalog.get_database(database, include_removed=True)
    backups, next_cursor = services.catalog.list_backups(
        database, limit=limit, cursor=cursor, status=status, method=method
    )
    return ShownBackups(backups, kept_as(services, record, backups), next_cursor)


def show_backup(services: Services, database: str, ref: str) -> ShownBackups:
    """One backup by id or `latest` (`find_backup`); DatabaseNotFound when that is why it
    is not found. Retention's verdict is read only for a done backup: what a client polls
    while it waits costs one read."""
    try:
        record = find_backup(services, database, ref)
    except BackupNotFound:
        services.catalog.get_database(database, include_removed=True)
        raise
    if record.status != "done":
        return ShownBackups([record])
    owner = services.catalog.get_database(database, include_removed=True)
    return ShownBackups([record], kept_as(services, owner, [record]))


NO_FARGATE = (
    "this deployment has no Fargate runner: deploy with DatabaseSubnetIds "
    "and DatabaseSecurityGroupIds for its tasks"
)
# Enough history for the runner choice: the newest finished and the newest done.
RECENT_BACKUPS = 10


def runner_for(
    services: Services,
    database: str,
    setting: RunnerSetting | None = None,
    recent: list[BackupRecord] | None = None,
) -> BackupRunner:
    """The runner of the database's next backup (pgbackups.domain.runners.choose_runner),
    from its `recent` backups, newest first (read here when not given)."""
    if setting is None:
        setting = services.catalog.get_database(database).runner
    if setting == "fargate" and services.fargate is None:
        raise RunnerFailed(NO_FARGATE)
    if setting == "lambda" or services.fargate is None:
        return services.runner
    if recent is None:
        recent, _ = services.catalog.list_backups(database, limit=RECENT_BACKUPS)
    limits = RunnerLimits(
        lambda_timeout_seconds=services.settings.backup_timeout_seconds,
        fargate_size_threshold_bytes=services.settings.fargate_size_threshold_bytes,
        fargate_available=services.fargate is not None,
    )
    name, why = choose_runner(setting, recent, limits)
    logger.info("runner chosen", extra={"database": database, "runner": name, "why": why})
    return services.fargate if name == "fargate" else services.runner


def choose_source(info: ConnectionInfo) -> tuple[BackupSource, Connection, ServerFacts]:
    """The replica when one is registered and accepts connections, else the primary.

    The connection that the probe accepted is the one pg_dump gets.
    """
    if info.replica_url:
        try:
            replica = registered_connection(info.replica_url)
            return "replica", replica, probe(replica, timeout=5)
        except PgBackupsError as error:
            logger.warning(
                "replica unreachable, backing up the primary", extra={"reason": error.message}
            )
    primary = registered_connection(info.url)
    return "primary", primary, probe(primary)


def run_backup(
    services: Services, request: BackupRequest, *, seconds_left: float, runner: RunnerName
) -> BackupRecord | None:
    """Take the backup; None when this invocation has nothing to do (a retry).

    `seconds_left` is the time until the runner stops this process for sure (the
    Lambda's deadline): the record keeps it as `deadline_at` for the dispatcher's
    reaper, and the dump stops with `error: timed out` early enough to abort and
    record it.
    """
    started = time.monotonic()
    phases = Phases()
    database, backup_id = request.database, request.backup_id
    now = services.clock()
    with phases("catalog"):
        record = services.catalog.start_backup(
            database,
            backup_id,
            now,
            runner=runner,
            deadline_at=now + timedelta(seconds=seconds_left),
        )
    if record is None:
        logger.info(
            "backup is not scheduled any more: nothing to do", extra={"backup_id": backup_id}
        )
        return None
    database_record: DatabaseRecord | None = None
    try:
        # Read once: the dump's settings and, after it, the retention policy.
        with phases("catalog"):
            database_record = services.catalog.get_database(database, include_removed=True)
        seconds = seconds_left - DEADLINE_MARGIN_SECONDS
        finished = _dump(services, database_record, record, seconds, started, phases)
    except DumpFailed as error:
        finished = _failed(services, record, str(error))
    except PgBackupsError as error:
        finished = _failed(services, record, error.message)
    except Exception as error:
        logger.exception("backup failed unexpectedly")
        finished = _failed(services, record, f"internal error ({type(error).__name__})")

    with phases("catalog"):
        recorded = services.catalog.finish_backup(finished)
    if not recorded:
        # The dispatcher's reaper gave up on this backup meanwhile: its record says
        # `error`, so no object may remain.
        logger.warning("backup was finished elsewhere; discarding this result")
        _discard_archive(services, finished)
        return services.catalog.get_backup(database, backup_id)
    if finished.status == "error":
        # Recorded first, so a failing delete cannot hide the reason; the upload was
        # aborted, this only covers a failure that came after it.
        _discard_archive(services, finished)
    with phases("event"):
        publish_backup_event(services, finished)
    if finished.status == "done" and database_record is not None:
        with phases("retention"):
            _retain_after_success(services, database_record)
    logger.info(
        "backup phases",
        extra={"backup_id": backup_id, "status": finished.status, "phases": phases.rounded()},
    )
    return finished


class UploadProgress:
    """Records on the running backup how many bytes of its archive S3 has, for clients
    that wait (`backups-create` shows it): at the first part, then at most every
    PROGRESS_SECONDS. So a client polling the backup reads one record, whatever its
    pace. Failing to record it never fails the backup."""

    def __init__(
        self,
        catalog: Catalog,
        record: BackupRecord,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._record = record
        self._clock = clock
        self._recorded_at: float | None = None

    def __call__(self, uploaded: int) -> None:
        now = self._clock()
        if self._recorded_at is not None and now - self._recorded_at < PROGRESS_SECONDS:
            return
        self._recorded_at = now
        try:
            self._catalog.record_upload_progress(self._record.database, self._record.id, uploaded)
        except Exception:
            logger.warning("could not record the upload's progress", exc_info=True)


class Phases:
    """Seconds spent in each phase of a backup, logged at its end (`make bench` reads them)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - began)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def rounded(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in self.seconds.items()}


def _dump(
    services: Services,
    database: DatabaseRecord,
    record: BackupRecord,
    seconds_left: float,
    started: float,
    phases: Phases,
) -> BackupRecord:
    with phases("catalog"):
        last_ratio = _last_ratio(services, record)
    with phases("secret"):
        info = services.secrets.get(record.database)
    with phases("probe"):
        source, target, facts = choose_source(info)
        pg_dump_version = services.tools.version()
    logger.info("dumping", extra={"source": source, "compression": database.compression})
    argv, env = dump_command(services.tools, target, database.compression)
    streaming = time.monotonic()
    try:
        stored = stream_dump_to_s3(
            services.archives,
            record.object_key,
            argv,
            env,
            seconds_left=seconds_left - (time.monotonic() - started),
            launcher=services.launcher,
            expected_size=expected_archive_size(facts.database_size, last_ratio),
            progress=UploadProgress(services.catalog, record),
        )
    except DumpFailed as error:
        # pg_dump's last lines come from the server: never let them carry a password.
        raise DumpFailed(scrub(str(error), info.url, info.replica_url)) from None
    # Until pg_dump's last byte was read, then the last parts and CompleteMultipartUpload.
    phases.add("dump stream", stored.dump_seconds)
    phases.add("upload completion", time.monotonic() - streaming - stored.dump_seconds)
    return record.model_copy(
        update={
            "status": "done",
            "finished_at": services.clock(),
            "size": stored.size,
            "sha256": stored.sha256,
            "compression": database.compression,
            "source": source,
            "server_version": facts.server_version,
            "database_size": facts.database_size,
            "pg_dump_version": pg_dump_version,
        }
    )


def _last_ratio(services: Services, record: BackupRecord) -> float | None:
    """Archive size / database size of the database's last successful backup."""
    try:
        last = services.catalog.latest_done_backup(record.database)
    except BackupNotFound:
        return None
    if not last.size or not last.database_size:
        return None
    return last.size / last.database_size


def _failed(services: Services, record: BackupRecord, reason: str) -> BackupRecord:
    reason = error_text(reason)  # a huge pg_dump message must not fail the final write
    logger.warning("backup failed", extra={"reason": reason})
    return record.model_copy(
        update={"status": "error", "finished_at": services.clock(), "error": reason}
    )


def _discard_archive(services: Services, record: BackupRecord) -> None:
    try:
        services.archives.delete(record.object_key)
    except Exception:
        logger.exception("could not delete the archive of a failed backup")


def publish_backup_event(services: Services, record: BackupRecord) -> None:
    """The event is a notification: failing to send it never changes the backup."""
    try:
        services.events.publish(record)
    except Exception:
        logger.exception("could not publish the backup event", extra={"status": record.status})


def _retain_after_success(services: Services, database: DatabaseRecord) -> None:
    """Apply retention after a success; its failure never fails the backup (the sweep retries)."""
    try:
        deleted = apply_retention(services, database, services.clock())
        if deleted:
            logger.info("retention deleted backups", extra={"deleted": [r.id for r in deleted]})
    except Exception:
        logger.exception("retention failed after the backup; the hourly sweep will retry")
