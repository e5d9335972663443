"""The capture (archive-push): one run per database at a time (a lease in DynamoDB),
streaming from the chain's position (a segment boundary) to what the server had
flushed when the run started.

Each complete segment is stored in S3, then the chain's position is saved, then the
slot is acknowledged, in that order: a run killed between any two steps re-sends a
segment next time and never leaves a hole. The current partial segment is stored
too (replayable, zero-padded), so the recovery point is about one capture interval old.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from pgbackups.domain.models import to_rfc3339
from pgbackups.domain.pitr import PitrState, WalChain, WalFile, base_backup_due
from pgbackups.postgres import lsn, records, slots, wal
from pgbackups.services import Services
from pgbackups.usecases.pitr.base_backup import request_base_backup
from pgbackups.usecases.pitr.chains import new_chain
from pgbackups.usecases.pitr.retention import apply_pitr_retention

logger = Logger(child=True)

# Kept back from the invocation's deadline: the run stops streaming this early.
CAPTURE_MARGIN_SECONDS = 20.0
WAL_COMPRESSION_LEVEL = 1
SERVER_WITH_READ_SLOT = 15  # READ_REPLICATION_SLOT


class UndecodableWal(Exception):
    """The server sent WAL the capture cannot decode: the chain cannot be trusted."""


@dataclass
class CaptureReport:
    database: str
    outcome: str = "idle"  # idle, busy (another run holds the lease), captured, broken, disabled
    segments: list[str] = field(default_factory=list)
    partial: str | None = None
    base_backup: str | None = None  # the id of the base backup this run asked the runner for
    broken_reason: str | None = None


def pitr_databases(services: Services) -> list[str]:
    """The databases a capture runs for: continuous backups on, or off with stored
    history left (the capture expires it)."""
    names = [record.name for record in services.catalog.list_databases()]
    states = [services.pitr.get_state(name) for name in names]
    return [
        state.database
        for state in states
        if state is not None and (state.enabled or state.chain_id is not None)
    ]


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
            if state is not None and state.chain_id is not None:
                _expire_history(services, state)
            return CaptureReport(database, outcome="disabled")
        return _capture(services, state, deadline)
    finally:
        services.pitr.release_lease(database, owner)


def _expire_history(services: Services, state: PitrState) -> None:
    """Continuous backups are off: their stored history expires with the window; once all
    of it is gone the database has nothing left to capture or restore."""
    apply_pitr_retention(services, state.database)
    if not services.pitr.chains(state.database):
        services.pitr.put_state(state.model_copy(update={"chain_id": None}))


def _capture(services: Services, state: PitrState, deadline: float) -> CaptureReport:
    database = state.database
    report = CaptureReport(database)
    assert state.chain_id is not None
    chain = services.pitr.get_chain(database, state.chain_id)
    url = services.secrets.replication_url(database)
    connection = wal.connect_replication(url)
    try:
        identity = wal.identify(connection)
        reason = _break_reason(connection, url, chain, identity, state.replication_slot)
        if reason is None:
            try:
                _stream(
                    services, connection, chain, state.replication_slot, identity, deadline, report
                )
            except wal.SlotLost as lost:
                reason = f"the slot lost WAL that was not archived yet ({lost})"
            except UndecodableWal as error:
                reason = str(error)
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
    slot: str,
    identity: wal.ServerIdentity,
    deadline: float,
    report: CaptureReport,
) -> None:
    if identity.flushed_lsn <= chain.archived_lsn:
        return  # nothing new since the last run

    def store(segment: wal.Segment) -> None:
        nonlocal chain
        commits = _commit_times(segment)
        file = _store_segment(services, chain, segment, max(commits, default=None))
        # Recorded before the chain's position moves and the receiver acknowledges it.
        services.pitr.put_wal_file(file)
        update: dict[str, object] = {
            "archived_lsn": max(chain.archived_lsn, segment.end_lsn),
            "last_archived_at": file.archived_at,
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
        connection, slot=slot, timeline=chain.timeline,
        segment_size=chain.segment_size,
    )  # fmt: skip
    receiver.stream(chain.position, identity.flushed_lsn, store, deadline=deadline)
    if report.outcome == "idle":
        report.outcome = "captured"


def _commit_times(segment: wal.Segment) -> list[datetime]:
    """Its commits' times, read before the segment is stored, so that WAL the capture
    cannot decode ends the chain instead of being retried at every run."""
    try:
        return records.commit_times(segment.chunks(), segment.start_lsn)
    except wal.MalformedWal as error:
        raise UndecodableWal(
            f"the server sent WAL that cannot be decoded in {segment.name} ({error})"
        ) from None


def _store_segment(
    services: Services, chain: WalChain, segment: wal.Segment, last_commit_at: datetime | None
) -> WalFile:
    """Store `segment` (gzip) and return its record, digest of the stored bytes included.
    The partial files it replaces are deleted by retention, once no plan names them."""
    now = services.clock()
    key = chain.wal_key(segment.name, partial_at=now if segment.partial else None)
    with segment.compressed(WAL_COMPRESSION_LEVEL) as body:
        services.archives.put_bytes(
            key,
            body.file,
            {"sha256": body.sha256, "end-lsn": lsn.format_lsn(segment.end_lsn)},
            kind="wal",
        )
    return WalFile(
        database=chain.database,
        chain_id=chain.id,
        name=segment.name,
        partial=segment.partial,
        key=key,
        size=body.size,
        sha256=body.sha256,
        start_lsn=segment.start_lsn,
        end_lsn=segment.end_lsn,
        last_commit_at=last_commit_at,
        archived_at=now,
    )


def _break_chain(
    services: Services, state: PitrState, chain: WalChain, url: str, reason: str
) -> WalChain:
    """End `chain` (broken) and start a new one from a fresh slot. The event `PITR
    Broken` once per break: a chain that breaks before the break ended (no base backup
    of the new chain yet) is the same break, one more entry in the history."""
    now = services.clock()
    services.pitr.put_chain(chain.model_copy(update={"broken_at": now, "broken_reason": reason}))
    logger.warning("continuous backup chain broken", extra={"chain": chain.id, "reason": reason})
    if state.status != "broken":
        _publish_broken(services, state.database, chain.id, reason, now)
    slot = state.replication_slot
    slots.drop_slot(url, slot)
    start = slots.create_slot(url, slot)
    connection = wal.connect_replication(url)
    try:
        identity = wal.identify(connection)
    finally:
        connection.close()
    new = new_chain(state.database, identity, start, now, url)
    services.pitr.put_chain(new)
    # Only what the capture knows: settings changed meanwhile are kept.
    if not services.pitr.move_to_chain(state.database, chain.id, new.id, reason, now):
        logger.warning("the state moved on meanwhile", extra={"chain": new.id})
    return new


def _publish_broken(
    services: Services, database: str, chain_id: str, reason: str, at: datetime
) -> None:
    try:
        services.events.publish_pitr_broken(
            {
                "database": database,
                "chain_id": chain_id,
                "reason": reason,
                "broken_at": to_rfc3339(at),
            }
        )
    except Exception:
        logger.exception("could not publish the PITR Broken event")
