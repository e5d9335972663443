"""Continuous backups: enable, capture WAL, base backups, retention, disable, restore plans.

The capture is the heart: one run per database at a time (a lease in DynamoDB),
streaming from the chain's position (a segment boundary) to what the server had
flushed when the run started. Each complete segment is stored in S3, then the
chain's position is saved, then the slot is acknowledged, in that order: a run
killed between any two steps re-sends a segment next time and never leaves a
hole. The current partial segment is stored too (replayable, zero-padded), so
the recovery point is about one capture interval old.

Base backups are not taken here: when one is due (right after enabling, every
`base_backup_every_days`, on a new chain after a break) the capture or enabling
records it (`BaseBackupRun`, one per database at a time) and asks the backups'
runner to take it, the backup function or the Fargate task as for logical backups;
`run_base_backup` is what that runner does. The capture keeps going meanwhile: the
slot holds the WAL from the base backup's start.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import (
    CaptureRunning,
    ChainEnded,
    InvalidInput,
    PgBackupsError,
    PitrNotEnabled,
    RecoveryWindowMoved,
    ReplicationRefused,
)
from pgbackups.domain.models import BackupRequest, RunnerName, error_text, to_rfc3339
from pgbackups.domain.pitr import (
    BaseBackup,
    BaseBackupRun,
    PitrSettings,
    PitrState,
    RestorePoint,
    WalChain,
    Window,
    base_backup_due,
    plan_pitr_retention,
    recovery_window,
    restore_point,
    slot_name,
)
from pgbackups.domain.runners import RunnerFailed
from pgbackups.postgres import lsn, records, slots, wal
from pgbackups.postgres.basebackup import stream_basebackup_to_s3
from pgbackups.postgres.streaming import DumpFailed
from pgbackups.postgres.urls import database_of, scrub, user_of
from pgbackups.services import Services
from pgbackups.usecases.backup import DEADLINE_MARGIN_SECONDS, runner_for

logger = Logger(child=True)

# Kept back from the invocation's deadline: the run stops streaming this early.
CAPTURE_MARGIN_SECONDS = 20.0
WAL_COMPRESSION_LEVEL = 1
# Enabling or disabling holds the capture lease at most this long.
SETTINGS_LEASE = timedelta(minutes=2)
# A restore downloads everything within this (the longest a presigned URL may live).
RESTORE_URL_LIFETIME = timedelta(hours=1)
RESTORE_PAGE_SIZE = 1000  # WAL files per page: about 1 MB of presigned URLs
MIN_WAL_LEVELS = ("replica", "logical", "archive", "hot_standby")
SERVER_WITH_READ_SLOT = 15  # READ_REPLICATION_SLOT


@dataclass
class CaptureReport:
    database: str
    outcome: str = "idle"  # idle, busy (another run holds the lease), captured, broken, disabled
    segments: list[str] = field(default_factory=list)
    partial: str | None = None
    base_backup: str | None = None  # the id of the base backup this run asked the runner for
    broken_reason: str | None = None


# -- enable / disable ---------------------------------------------------------------------


def enable_pitr(
    services: Services,
    database: str,
    settings: PitrSettings,
    replication_url: str | None = None,
) -> PitrState:
    """Turn continuous backups on (or change their settings), checking the server.

    Refusals are ReplicationRefused (422) naming the missing setting or privilege.
    The first base backup is asked of the backups' runner at once: it may take longer
    than an API request may, so the state shows it on its way until it is stored.
    """
    services.catalog.get_database(database)  # DatabaseNotFound
    current = services.pitr.get_state(database)
    if not settings.enabled:
        return disable_pitr(services, database, settings)
    url = replication_url or services.secrets.replication_url(database)
    if current is not None and current.enabled and replication_url is None:
        state = current.model_copy(update=settings.model_dump())
        services.pitr.put_state(state)
        return state

    identity = check_server(url, "replication_url" if replication_url else "url")
    with _lease(services, database):
        state = _start_pitr(services, database, settings, url, replication_url, current, identity)
    assert state.chain_id is not None
    request_base_backup(services, database, state.chain_id)
    return state


def _start_pitr(
    services: Services,
    database: str,
    settings: PitrSettings,
    url: str,
    replication_url: str | None,
    current: PitrState | None,
    identity: wal.ServerIdentity,
) -> PitrState:
    slot = slot_name(database)
    try:
        slots.drop_slot(url, slot)
        start = slots.create_slot(url, slot)
    except wal.ReplicationFailed as error:
        raise ReplicationRefused(
            f"cannot create the replication slot {slot}: {error} (the role needs the "
            "REPLICATION attribute and a free slot: raise max_replication_slots)",
            field="replication_url",
        ) from None
    if replication_url is not None:
        services.secrets.put_replication_url(database, replication_url)
    now = services.clock()
    if current is not None and current.chain_id is not None:
        _end_chain(services, database, current.chain_id, "continuous backups were enabled again")
    chain = _new_chain(database, identity, start, now, url)
    services.pitr.put_chain(chain)
    state = PitrState(
        database=database,
        **settings.model_dump(),
        status="ok",
        chain_id=chain.id,
        enabled_at=now,
    )
    services.pitr.put_state(state)
    logger.info("continuous backups enabled", extra={"database": database, "chain": chain.id})
    return state


def check_server(url: str, field_name: str) -> wal.ServerIdentity:
    """The server's identity over a replication connection, or ReplicationRefused saying why."""
    try:
        connection = wal.connect_replication(url)
    except wal.ReplicationFailed as error:
        level = slots.wal_level(url)
        if level is not None and level not in MIN_WAL_LEVELS:
            raise ReplicationRefused(
                _wal_level_refusal(field_name, level), field=field_name
            ) from None
        raise ReplicationRefused(
            f"{field_name}: the server refuses a replication connection ({error}). The role "
            "needs the REPLICATION attribute and pg_hba.conf a `replication` line for it; "
            "managed services (RDS, Supabase, Neon) do not offer physical replication",
            field=field_name,
        ) from None
    try:
        identity = wal.identify(connection)
    finally:
        connection.close()
    if identity.wal_level not in MIN_WAL_LEVELS:
        raise ReplicationRefused(
            _wal_level_refusal(field_name, identity.wal_level), field=field_name
        )
    return identity


def _wal_level_refusal(field_name: str, level: str) -> str:
    return (
        f"{field_name}: the server has wal_level = {level}; continuous backups need "
        "wal_level = replica (or logical), max_wal_senders > 0 and a restart"
    )


def _new_chain(
    database: str, identity: wal.ServerIdentity, start_lsn: int, now: datetime, url: str
) -> WalChain:
    start = start_lsn - start_lsn % identity.segment_size
    return WalChain.new(
        database,
        now,
        system_id=identity.system_id,
        timeline=identity.timeline,
        segment_size=identity.segment_size,
        server_version_num=identity.version_num,
        source_database=database_of(url),
        source_user=user_of(url),
        start_lsn=start,
        position=start,
        archived_lsn=start,
    )


def disable_pitr(
    services: Services, database: str, settings: PitrSettings | None = None
) -> PitrState:
    """Drop the slot (the server must not keep WAL for nobody); stored WAL expires."""
    with _lease(services, database):
        return _stop_pitr(services, database, settings)


def _stop_pitr(services: Services, database: str, settings: PitrSettings | None) -> PitrState:
    current = services.pitr.get_state(database)
    if current is None:
        current = PitrState(database=database)
    if current.enabled:
        url = services.secrets.replication_url(database)
        try:
            slots.drop_slot(url, slot_name(database))
        except wal.ReplicationFailed as error:
            raise ReplicationRefused(
                f"cannot drop the replication slot {slot_name(database)}: {error}"
            ) from None
    if current.enabled and current.chain_id is not None:
        _end_chain(services, database, current.chain_id, "continuous backups were disabled")
    update = (settings or PitrSettings()).model_dump() | {"enabled": False, "status": "disabled"}
    state = current.model_copy(update=update)
    services.pitr.put_state(state)
    logger.info("continuous backups disabled", extra={"database": database})
    return state


@contextlib.contextmanager
def _lease(services: Services, database: str) -> Iterator[None]:
    """The capture lease, so that no capture extends a chain being replaced or stopped."""
    owner = uuid.uuid4().hex
    now = services.clock()
    if not services.pitr.acquire_lease(database, owner, now, now + SETTINGS_LEASE):
        raise CaptureRunning(
            f"a WAL capture of {database} is running: try again when it has finished"
        )
    try:
        yield
    finally:
        services.pitr.release_lease(database, owner)


def _end_chain(services: Services, database: str, chain_id: str, reason: str) -> None:
    """A chain that will not grow any more (retention then treats it like a broken one)."""
    chain = services.pitr.get_chain(database, chain_id)
    if chain.broken_at is None:
        services.pitr.put_chain(
            chain.model_copy(update={"broken_at": services.clock(), "broken_reason": reason})
        )


def forget_pitr(services: Services, database: str) -> None:
    """A database is removed: drop its slot (best effort: the server may be gone) and its
    replication URL; what is stored expires with the window."""
    state = services.pitr.get_state(database)
    if state is not None and state.enabled:
        try:
            disable_pitr(services, database)
        except Exception as error:
            reason = str(
                error.message if isinstance(error, PgBackupsError) else type(error).__name__
            )
            logger.exception(
                "could not drop the replication slot of a removed database; drop it by hand",
                extra={"database": database, "slot": slot_name(database)},
            )
            services.pitr.put_state(
                state.model_copy(update={"enabled": False, "status": "disabled"})
            )
            _publish_slot_left(services, database, reason)
    services.secrets.delete_replication_url(database)


def _publish_slot_left(services: Services, database: str, reason: str) -> None:
    """The server keeps WAL for the slot until someone drops it (or, with
    `max_slot_wal_keep_size`, invalidates it): whoever watches the events must know."""
    try:
        services.events.publish_pitr_slot_left(
            {
                "database": database,
                "slot": slot_name(database),
                "reason": reason,
                "action": f"SELECT pg_drop_replication_slot('{slot_name(database)}');",
                "at": to_rfc3339(services.clock()),
            }
        )
    except Exception:
        logger.exception("could not publish the PITR Slot Left event")


# -- capture -------------------------------------------------------------------------------


def pitr_databases(services: Services) -> list[str]:
    names = [record.name for record in services.catalog.list_databases()]
    return [state.database for state in services.pitr.enabled_databases(names)]


def start_captures(services: Services) -> list[str]:
    """The scheduled run: one capture invocation per database with continuous backups,
    so a slow one (a base backup) never delays the others."""
    started = []
    for database in pitr_databases(services):
        try:
            services.captures.start(database)
            started.append(database)
        except Exception:
            logger.exception("could not start a capture", extra={"database": database})
    return started


def capture(services: Services, database: str, *, seconds_left: float) -> CaptureReport:
    """One run for one database; `busy` without touching anything if another run is on."""
    started = time.monotonic()
    deadline = started + max(seconds_left - CAPTURE_MARGIN_SECONDS, 0)
    owner = uuid.uuid4().hex
    now = services.clock()
    if not services.pitr.acquire_lease(database, owner, now, now + timedelta(seconds=seconds_left)):
        logger.info("another capture of this database is running", extra={"database": database})
        return CaptureReport(database, outcome="busy")
    try:
        state = services.pitr.get_state(database)
        if state is None or not state.enabled or state.chain_id is None:
            return CaptureReport(database, outcome="disabled")
        return _capture(services, state, deadline)
    finally:
        services.pitr.release_lease(database, owner)


def _capture(services: Services, state: PitrState, deadline: float) -> CaptureReport:
    database = state.database
    report = CaptureReport(database)
    assert state.chain_id is not None
    chain = services.pitr.get_chain(database, state.chain_id)
    url = services.secrets.replication_url(database)
    connection = wal.connect_replication(url)
    try:
        identity = wal.identify(connection)
        reason = _break_reason(connection, url, chain, identity, slot_name(database))
        if reason is None:
            try:
                _stream(services, connection, chain, identity, deadline, report)
            except wal.SlotLost as lost:
                reason = f"the slot lost WAL that was not archived yet ({lost})"
    finally:
        connection.close()
    if reason is not None:
        chain = _break_chain(services, state, chain, url, reason)
        report.outcome, report.broken_reason = "broken", reason
        state = services.pitr.get_state(database) or state

    run = services.pitr.base_backup_run(database)
    bases = services.pitr.base_backups(database)
    if base_backup_due(state, chain, bases, run, services.clock()):
        report.base_backup = request_base_backup(services, database, chain.id)
    apply_pitr_retention(services, database)
    return report


def _break_reason(
    connection: wal.PhysicalReplicationConnection,
    url: str,
    chain: WalChain,
    identity: wal.ServerIdentity,
    slot: str,
) -> str | None:
    """Why the chain cannot go on (a different server, a new timeline, a lost slot, a gap)."""
    if identity.system_id != chain.system_id:
        return (
            f"the server's system identifier changed ({chain.system_id} → {identity.system_id}): "
            "another cluster answers at this URL"
        )
    if identity.timeline != chain.timeline:
        return (
            f"the server moved to timeline {identity.timeline} (was {chain.timeline}): "
            "it was promoted or recovered"
        )
    # pg_replication_slots says `lost` as soon as the slot is invalidated; servers 17+
    # keep its restart_lsn, so READ_REPLICATION_SLOT alone would not tell.
    try:
        restart = slots.slot_restart_lsn(url, slot)
    except wal.SlotLost as lost:
        return str(lost)
    except wal.ReplicationFailed:
        # No SQL access for this role: READ_REPLICATION_SLOT (servers 15+).
        if identity.major < SERVER_WITH_READ_SLOT:
            raise
        position = slots.read_slot(connection, slot)
        if position is None:
            return f"the replication slot {slot} no longer exists"
        if position.restart_lsn is None:
            return f"the replication slot {slot} was invalidated (max_slot_wal_keep_size)"
        restart = position.restart_lsn
    if restart - restart % chain.segment_size > chain.position:
        return (
            f"gap: the slot starts at {lsn.format_lsn(restart)} but the archive ends at "
            f"{lsn.format_lsn(chain.position)}"
        )
    return None


def _stream(
    services: Services,
    connection: wal.PhysicalReplicationConnection,
    chain: WalChain,
    identity: wal.ServerIdentity,
    deadline: float,
    report: CaptureReport,
) -> None:
    if identity.flushed_lsn <= chain.archived_lsn:
        return  # nothing new since the last run

    def store(segment: wal.Segment) -> None:
        nonlocal chain
        _store_segment(services, chain, segment)
        commits = records.commit_times(segment.chunks(), segment.start_lsn)
        update: dict[str, object] = {
            "archived_lsn": max(chain.archived_lsn, segment.end_lsn),
            "last_archived_at": services.clock(),
        }
        if commits and (chain.last_commit_at is None or commits[-1] > chain.last_commit_at):
            update["last_commit_at"] = commits[-1]
        if segment.partial:
            report.partial = segment.name
        else:
            update["position"] = segment.end_lsn
            report.segments.append(segment.name)
            if report.partial == segment.name:  # completed since (after a base backup)
                report.partial = None
        chain = chain.model_copy(update=update)
        # Saved before the receiver acknowledges the segment to the server.
        services.pitr.put_chain(chain)

    receiver = wal.WalReceiver(
        connection, slot=slot_name(chain.database), timeline=chain.timeline,
        segment_size=chain.segment_size,
    )  # fmt: skip
    receiver.stream(chain.position, identity.flushed_lsn, store, deadline=deadline)
    if report.outcome == "idle":
        report.outcome = "captured"


def _store_segment(services: Services, chain: WalChain, segment: wal.Segment) -> None:
    key = chain.wal_prefix() + segment.name + (".partial" if segment.partial else "") + ".gz"
    with segment.compressed(WAL_COMPRESSION_LEVEL) as body:
        services.archives.put_bytes(
            key,
            body.file,
            {"sha256": body.sha256, "end-lsn": lsn.format_lsn(segment.end_lsn)},
            kind="wal",
        )
    if not segment.partial:
        services.archives.delete(chain.wal_prefix() + segment.name + ".partial.gz")


def _break_chain(
    services: Services, state: PitrState, chain: WalChain, url: str, reason: str
) -> WalChain:
    """End `chain` (broken, event) and start a new one from a fresh slot."""
    now = services.clock()
    services.pitr.put_chain(chain.model_copy(update={"broken_at": now, "broken_reason": reason}))
    logger.warning("continuous backup chain broken", extra={"chain": chain.id, "reason": reason})
    try:
        services.events.publish_pitr_broken(
            {
                "database": state.database,
                "chain_id": chain.id,
                "reason": reason,
                "broken_at": to_rfc3339(now),
            }
        )
    except Exception:
        logger.exception("could not publish the PITR Broken event")
    slot = slot_name(state.database)
    slots.drop_slot(url, slot)
    start = slots.create_slot(url, slot)
    connection = wal.connect_replication(url)
    try:
        identity = wal.identify(connection)
    finally:
        connection.close()
    new = _new_chain(state.database, identity, start, now, url)
    services.pitr.put_chain(new)
    services.pitr.put_state(
        state.model_copy(update={"status": "broken", "broken_reason": reason, "chain_id": new.id})
    )
    return new


# -- base backups ----------------------------------------------------------------------------


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
    services.pitr.mark_ok(database, base.chain_id)
    logger.info("base backup stored", extra={"base_backup": base.id, "size": base.size})
    return BaseBackupResult("done", base=base)


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


# -- retention --------------------------------------------------------------------------------


def apply_pitr_retention(services: Services, database: str) -> list[BaseBackup]:
    """Delete base backups and WAL older than the window; never what a kept backup needs."""
    state = services.pitr.get_state(database)
    if state is None:
        return []
    chains = services.pitr.chains(database)
    bases = services.pitr.base_backups(database)
    plan = plan_pitr_retention(
        chains, bases, state.chain_id if state.enabled else None, state.window_days,
        services.clock(),
    )  # fmt: skip
    for base in plan.delete_bases:
        services.archives.delete(base.object_key)
        services.pitr.delete_base_backup(base)
    for chain in chains:
        floor = plan.wal_floor.get(chain.id)
        if chain in plan.delete_chains:
            for key in services.archives.keys(f"databases/{database}/pitr/{chain.id}/"):
                services.archives.delete(key)
            services.pitr.delete_chain(chain)
        elif floor is not None:
            for key in services.archives.keys(chain.wal_prefix()):
                name = key.removeprefix(chain.wal_prefix())[:24]
                start = lsn.segment_start(name, chain.segment_size)
                if start + chain.segment_size <= floor:
                    services.archives.delete(key)
    return plan.delete_bases


def recovery_window_of(services: Services, database: str) -> Window:
    return recovery_window(services.pitr.chains(database), services.pitr.base_backups(database))


# -- restore ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalFile:
    name: str  # the segment file name recovery asks for
    key: str
    partial: bool


@dataclass(frozen=True)
class RestorePlan:
    """One page of what a restore downloads: the base backup, and WAL files in order.

    A busy week is thousands of segments: more than one answer can carry, and more
    than one hour of presigned URLs can cover. The restore asks for the next page
    (`next_cursor`) when it has downloaded this one."""

    point: RestorePoint
    wal: list[WalFile]
    wal_total: int
    next_cursor: str | None


def plan_restore(
    services: Services,
    database: str,
    target: datetime | None,
    *,
    cursor: str | None = None,
    limit: int = RESTORE_PAGE_SIZE,
) -> RestorePlan:
    """What a restore to `target` (None: latest) downloads, from `cursor` on;
    OutsideRecoveryWindow first."""
    services.catalog.get_database(database)
    state = services.pitr.get_state(database)
    if state is None or state.chain_id is None:
        raise PitrNotEnabled(f"continuous backups were never enabled for {database}")
    point = restore_point(
        services.pitr.chains(database), services.pitr.base_backups(database), target
    )
    after = _after(cursor, point.base.id)
    chain, base = point.chain, point.base
    first = base.start_lsn - base.start_lsn % chain.segment_size
    complete: dict[str, str] = {}
    partial: dict[str, str] = {}
    for key in services.archives.keys(chain.wal_prefix()):
        file = key.removeprefix(chain.wal_prefix())
        name = file[:24]
        if lsn.segment_start(name, chain.segment_size) < first:
            continue
        (partial if file.endswith(".partial.gz") else complete)[name] = key
    files = [WalFile(n, k, False) for n, k in complete.items()]
    newest = max(complete, default="")
    # The partial segment, replayable, is the newest file when there is one.
    files += [WalFile(n, k, True) for n, k in partial.items() if n not in complete and n > newest]
    files.sort(key=lambda f: f.name)
    remaining = [f for f in files if f.name > after]
    page = remaining[:limit]
    more = len(remaining) > limit
    return RestorePlan(point, page, len(files), f"{base.id}.{page[-1].name}" if more else None)


def _after(cursor: str | None, base_id: str) -> str:
    """The last WAL file name of the previous page ("" for the first page)."""
    if cursor is None:
        return ""
    cursor_base, _, name = cursor.partition(".")
    if not re.fullmatch(r"[0-9A-F]{24}", name):
        raise InvalidInput("cursor: not a next_cursor of this restore plan", field="cursor")
    if cursor_base != base_id:
        raise RecoveryWindowMoved(
            "the base backup this restore started from no longer leads to this target "
            "(a newer one was stored, or retention removed it): start the restore again"
        )
    return name


def restore_links(services: Services, plan: RestorePlan) -> dict[str, object]:
    """The plan as the API returns it: presigned URLs valid one hour."""
    chain, base = plan.point.chain, plan.point.base
    expires = services.clock() + RESTORE_URL_LIFETIME
    return {
        "target_time": plan.point.target,
        "server_major": chain.server_major,
        "system_id": chain.system_id,
        "timeline": chain.timeline,
        "source_database": chain.source_database,
        "source_user": chain.source_user,
        "base_backup": {
            "id": base.id,
            "url": services.archives.object_url(base.object_key, RESTORE_URL_LIFETIME),
            "size": base.size,
            "sha256": base.sha256,
            "finished_at": base.finished_at,
        },
        "wal": [
            {
                "name": f.name,
                "partial": f.partial,
                "url": services.archives.object_url(f.key, RESTORE_URL_LIFETIME),
            }
            for f in plan.wal
        ],
        "wal_total": plan.wal_total,
        "next_cursor": plan.next_cursor,
        "expires_at": expires,
    }
