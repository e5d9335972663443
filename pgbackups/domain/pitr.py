"""Continuous backups (point-in-time recovery): settings, chains, base backups, the window.

A *chain* is one unbroken stretch of WAL from one server (system id, timeline),
captured from the reserved slot, with the base backups taken during it. A gap,
a new system id or timeline, or a lost slot ends a chain (`broken`) and starts a
new one. A moment is recoverable when some chain has a base backup finished
before it and a commit at or after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from ulid import ULID

from pgbackups.domain.errors import (
    OutsideRecoveryWindow,
)
from pgbackups.domain.models import Run, RunnerName, to_rfc3339

PitrStatus = Literal["ok", "broken", "disabled"]
DEFAULT_BASE_BACKUP_EVERY_DAYS = 7
DEFAULT_WINDOW_DAYS = 7


SLOT_NAME_MAX = 63  # PostgreSQL cuts longer names (NAMEDATALEN - 1)


def slot_name(database: str, unique: str) -> str:
    """`pgbackups_<db>_<unique>`: slot names allow lower-case letters, digits and
    underscores, and 63 characters. `unique` (drawn once per database, kept in its
    state) keeps apart the databases that meet otherwise: `col-x` and `col_x`, or two
    long names that share their first 50 characters."""
    stem = database.replace("-", "_")[: SLOT_NAME_MAX - len("pgbackups__") - len(unique)]
    return f"pgbackups_{stem}_{unique}"


class PitrSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    base_backup_every_days: int = Field(default=DEFAULT_BASE_BACKUP_EVERY_DAYS, ge=1, le=7)
    window_days: int = Field(default=DEFAULT_WINDOW_DAYS, ge=1, le=30)


class PitrState(PitrSettings):
    """A database's continuous backups (DynamoDB item `PITR`)."""

    model_config = ConfigDict(extra="ignore")

    database: str
    status: PitrStatus = "disabled"
    broken_reason: str | None = None
    broken_since: datetime | None = None  # when the current break began (while `broken`)
    chain_id: str | None = None  # the chain the capture extends
    enabled_at: datetime | None = None
    # The replication slot, named when continuous backups were first enabled (None:
    # enabled before slot names were unique, `pgbackups_<db>`).
    slot: str | None = None

    @property
    def replication_slot(self) -> str:
        return self.slot or f"pgbackups_{self.database.replace('-', '_')}"


# A WAL file's name: timeline, log and segment, 8 hex digits each.
WAL_FILE_NAME = re.compile(r"^[0-9A-F]{24}$")
PARTIAL_AT = "%Y%m%dT%H%M%S%f"
_PARTIAL_KEY = re.compile(r"^(?P<name>[0-9A-F]{24})\.(?P<at>[0-9]{8}T[0-9]{12})\.partial\.gz$")


def partial_wal_file(chain: WalChain, key: str) -> tuple[str, datetime] | None:
    """The WAL file name and the moment of a partial file's key the capture wrote for
    `chain`; None for any other key (keys in the bucket are not trusted)."""
    if not key.startswith(chain.wal_prefix()):
        return None
    match = _PARTIAL_KEY.fullmatch(key.removeprefix(chain.wal_prefix()))
    if match is None:
        return None
    return match["name"], datetime.strptime(match["at"], PARTIAL_AT).replace(tzinfo=UTC)


class WalChain(BaseModel):
    """One unbroken stretch of WAL (DynamoDB item `PITRCHAIN#<id>`)."""

    id: str
    database: str
    system_id: str
    timeline: int
    segment_size: int
    server_version_num: int
    source_database: str  # the database a restore into a target URL moves
    source_user: str  # the role the restore connects as to the recovered cluster
    started_at: datetime
    start_lsn: int  # the slot's position when the chain started (a segment boundary)
    position: int  # stored and acknowledged: every segment before it is archived complete
    archived_lsn: int  # stored, the last partial segment included
    last_commit_at: datetime | None = None  # newest commit in the archive
    last_archived_at: datetime | None = None
    broken_at: datetime | None = None
    broken_reason: str | None = None

    @classmethod
    def new(cls, database: str, started_at: datetime, **fields: object) -> WalChain:
        return cls(
            id=str(ULID.from_datetime(started_at)),
            database=database,
            started_at=started_at,
            **fields,  # type: ignore[arg-type]
        )

    @property
    def server_major(self) -> int:
        return self.server_version_num // 10000

    def wal_prefix(self) -> str:
        return f"databases/{self.database}/pitr/{self.id}/wal/"

    def wal_key(self, name: str, *, partial_at: datetime | None = None) -> str:
        """Where the capture stores the WAL file `name` (gzip). Each capture stores the
        partial file under a new key (`partial_at`: when), so that the URL a restore
        plan gave keeps the bytes whose digest it gave, whatever the capture does next."""
        if partial_at is None:
            return f"{self.wal_prefix()}{name}.gz"
        return f"{self.wal_prefix()}{name}.{partial_at.astimezone(UTC):{PARTIAL_AT}}.partial.gz"

    def stores(self, file: WalFile) -> bool:
        """Whether `file`'s name and key are what the capture of this chain writes."""
        if not WAL_FILE_NAME.fullmatch(file.name):
            return False
        if not file.partial:
            return file.key == self.wal_key(file.name)
        found = partial_wal_file(self, file.key)
        return found is not None and found[0] == file.name


class WalFile(BaseModel):
    """One WAL file stored in S3, as the capture recorded it when it stored the file
    (DynamoDB item `PITRWAL#<chain>#<name>`): restore plans are built from these alone,
    and a restore checks each download against `sha256`.

    One record per segment: the current partial file's, rewritten by each capture, then
    the complete file's."""

    database: str
    chain_id: str
    name: str
    partial: bool
    key: str
    size: int  # bytes stored (compressed)
    sha256: str  # hex digest of the bytes stored
    start_lsn: int  # the segment's start
    end_lsn: int  # where its WAL ends (the segment's end unless partial)
    last_commit_at: datetime | None = None  # newest whole commit record in it
    archived_at: datetime


class BaseBackup(BaseModel):
    """One pg_basebackup tar in S3 (DynamoDB item `PITRBASE#<id>`)."""

    id: str
    database: str
    chain_id: str
    started_at: datetime
    finished_at: datetime
    # Bounds read from the server around the backup: the backup's own start is at
    # or after `start_lsn` and its end at or before `end_lsn`.
    start_lsn: int
    end_lsn: int
    timeline: int
    size: int
    sha256: str
    server_version_num: int
    runner: RunnerName | None = None  # what took it (None: the capture, before runners did)

    @property
    def object_key(self) -> str:
        return base_backup_key(self.database, self.chain_id, self.id)


BaseBackupRunStatus = Literal["scheduled", "running", "error"]
# After a failed base backup, the next one is asked for this much later, so a server
# that refuses pg_basebackup does not get one attempt per capture run.
BASE_BACKUP_RETRY_AFTER = timedelta(minutes=10)


class BaseBackupRun(Run):
    """A database's base backup on its way (DynamoDB item `PITR#BASEBACKUP`), which is
    also the lock: at most one is `scheduled` or `running` per database.

    The capture (or enabling) records it `scheduled` and asks the backups' runner to
    take it; the runner moves it to `running` with its deadline, then either stores
    a BaseBackup and deletes this item, or leaves it as `error` with the reason
    (which GET …/pitr shows until a base backup succeeds).
    """

    what: ClassVar[str] = "base backup"

    chain_id: str
    status: BaseBackupRunStatus = "scheduled"

    @classmethod
    def new(cls, database: str, chain_id: str, created_at: datetime) -> BaseBackupRun:
        return cls(
            id=str(ULID.from_datetime(created_at)),
            database=database,
            chain_id=chain_id,
            created_at=created_at,
        )

    @property
    def object_key(self) -> str:
        return base_backup_key(self.database, self.chain_id, self.id)


def base_backup_due(
    state: PitrState,
    chain: WalChain,
    bases: list[BaseBackup],
    run: BaseBackupRun | None,
    now: datetime,
) -> bool:
    """Whether the chain needs a base backup now: it has none yet (just enabled, or a
    new chain after a break), or its newest is `base_backup_every_days` old. Not while
    one is on its way, nor soon after one failed."""
    if run is not None:
        if run.active and run.abandoned_reason(now) is None:
            return False
        # A failure of this chain's base backup waits; one of an ended chain does not.
        failed_at = run.finished_at if run.status == "error" else None
        if (
            failed_at is not None
            and run.chain_id == chain.id
            and now - failed_at < BASE_BACKUP_RETRY_AFTER
        ):
            return False
    own = [b for b in bases if b.chain_id == chain.id]
    if not own:
        return True
    newest = max(b.started_at for b in own)
    return now - newest >= timedelta(days=state.base_backup_every_days)


def base_backup_key(database: str, chain_id: str, backup_id: str) -> str:
    return f"databases/{database}/pitr/{chain_id}/base/{backup_id}.tar.gz"


# -- the window --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stretch:
    """What one chain can restore: any moment in [earliest, latest]."""

    chain: WalChain
    earliest: datetime
    latest: datetime
    first: BaseBackup  # the base backup that restores `earliest`


def stretches(chains: list[WalChain], bases: list[BaseBackup]) -> list[Stretch]:
    """The recoverable stretch of each chain that has a base backup, oldest first."""
    found = []
    for chain in sorted(chains, key=lambda c: c.id):
        # A base backup restores nothing until the WAL up to its end is archived.
        own = [b for b in bases if b.chain_id == chain.id and b.end_lsn <= chain.archived_lsn]
        if not own:
            continue
        first = min(own, key=lambda b: (b.finished_at, b.id))
        latest = max(first.finished_at, chain.last_commit_at or first.finished_at)
        found.append(Stretch(chain, first.finished_at, latest, first))
    return found


@dataclass(frozen=True)
class RecoverableRange:
    """Any moment in [start, end] restores, from `chain`'s WAL replayed over one of its
    base backups; `base` is the one that starts the range (its first moment)."""

    start: datetime
    end: datetime
    chain: WalChain
    base: BaseBackup

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end


def recoverable_ranges(chains: list[WalChain], bases: list[BaseBackup]) -> list[RecoverableRange]:
    """The ranges a restore can reach, oldest first, apart from one another.

    Chains follow one another, but their stretches can overlap: a stretch ends at the
    server's last commit time and the next starts at a base backup's end on our clock.
    Where they overlap the newer chain restores (its WAL is the one the server went on
    with): the older range is cut where the newer one starts, or left out if nothing of
    it remains before."""
    ranges: list[RecoverableRange] = []
    for stretch in stretches(chains, bases):  # in chain order
        kept = (_cut(r, stretch.earliest) for r in ranges)
        ranges = [r for r in kept if r is not None]
        ranges.append(
            RecoverableRange(stretch.earliest, stretch.latest, stretch.chain, stretch.first)
        )
    return sorted(ranges, key=lambda r: r.start)


def _cut(existing: RecoverableRange, newer_start: datetime) -> RecoverableRange | None:
    if existing.end < newer_start:
        return existing
    if existing.start >= newer_start:
        return None
    return RecoverableRange(existing.start, newer_start, existing.chain, existing.base)


@dataclass(frozen=True)
class Window:
    earliest: datetime | None
    latest: datetime | None


def recovery_window(chains: list[WalChain], bases: list[BaseBackup]) -> Window:
    return window_of(recoverable_ranges(chains, bases))


def window_of(ranges: list[RecoverableRange]) -> Window:
    if not ranges:
        return Window(None, None)
    return Window(ranges[0].start, max(r.end for r in ranges))


@dataclass(frozen=True)
class Break:
    """A chain's end: when, why, and when restoring was possible again (None: not yet)."""

    at: datetime
    reason: str
    chain_id: str
    recovered_at: datetime | None

    @property
    def gap_seconds(self) -> float | None:
        if self.recovered_at is None:
            return None
        return max((self.recovered_at - self.at).total_seconds(), 0.0)


def breaks(chains: list[WalChain], bases: list[BaseBackup]) -> list[Break]:
    """Every end of a kept chain, oldest first. The break ends when a newer chain (chain
    ids grow with time) has a stored base backup: `status` is `ok` again then, and its
    range begins as soon as the capture has stored the WAL to the backup's end."""
    found = []
    for chain in chains:
        if chain.broken_at is None:
            continue
        recovered = min((b.finished_at for b in bases if b.chain_id > chain.id), default=None)
        reason = chain.broken_reason or "the chain ended"
        found.append(Break(chain.broken_at, reason, chain.id, recovered))
    return sorted(found, key=lambda b: (b.at, b.chain_id))


@dataclass(frozen=True)
class RestorePoint:
    chain: WalChain
    base: BaseBackup
    target: datetime | None  # None: replay the whole archive (the latest state)


def restore_point(
    chains: list[WalChain], bases: list[BaseBackup], target: datetime | None
) -> RestorePoint:
    """The chain and base backup that restore `target` (None: the latest moment).

    OutsideRecoveryWindow when no range covers it, naming the nearest recoverable
    moments on both sides (`before`, `after`). A target at or after the chain's
    newest commit replays the whole chain: recovery to a time past the last archived
    commit would end in `recovery ended before configured recovery target was
    reached`, and the state is the same.
    """
    ranges = recoverable_ranges(chains, bases)
    if not ranges:
        raise OutsideRecoveryWindow(
            "there is no base backup yet: nothing can be restored", before=None, after=None
        )
    if target is None:
        found = max(ranges, key=lambda r: r.end)
        target = found.end
    else:
        target = target.astimezone(UTC)
        matching = [r for r in ranges if r.covers(target)]
        if not matching:
            raise _outside(target, ranges)
        found = matching[-1]
    chain = found.chain
    base = max(
        (
            b
            for b in bases
            if b.chain_id == chain.id
            and found.base.finished_at <= b.finished_at <= target
            and b.end_lsn <= chain.archived_lsn
        ),
        key=lambda b: b.finished_at,
    )
    to_end = chain.last_commit_at is None or target >= chain.last_commit_at
    return RestorePoint(chain, base, None if to_end else target)


def _outside(target: datetime, ranges: list[RecoverableRange]) -> OutsideRecoveryWindow:
    before = max((r.end for r in ranges if r.end < target), default=None)
    after = min((r.start for r in ranges if r.start > target), default=None)
    if before is not None and after is not None:
        where = (
            "it falls in a gap between recoverable ranges; the nearest recoverable times "
            f"are {to_rfc3339(before)} (before) and {to_rfc3339(after)} (after)"
        )
    elif before is not None:
        where = f"the latest recoverable time is {to_rfc3339(before)}"
    else:
        assert after is not None
        where = f"the earliest recoverable time is {to_rfc3339(after)}"
    return OutsideRecoveryWindow(
        f"{to_rfc3339(target)} is outside the recovery window: {where}",
        field="target_time",
        before=to_rfc3339(before) if before is not None else None,
        after=to_rfc3339(after) if after is not None else None,
    )


def history_kept_until(state: PitrState, ranges: list[RecoverableRange]) -> datetime | None:
    """Continuous backups off, stored history left: when its last range expires (the
    window after its end)."""
    if state.enabled or not ranges:
        return None
    return max(r.end for r in ranges) + timedelta(days=state.window_days)


# -- expiry (retention of continuous backups) -----------------------------------------


@dataclass(frozen=True)
class PitrExpiry:
    delete_bases: list[BaseBackup]
    delete_chains: list[WalChain]  # with all their WAL
    wal_floor: dict[str, int]  # chain id → WAL before this LSN is not needed any more


def plan_pitr_expiry(
    chains: list[WalChain],
    bases: list[BaseBackup],
    current_chain_id: str | None,
    window_days: int,
    now: datetime,
) -> PitrExpiry:
    """Keep `window_days` of history: the newest base backup finished before the window
    starts (it restores the window's first moment) and everything newer; the WAL that
    the oldest kept base backup of each chain needs, and none before it. With continuous
    backups off (`current_chain_id` None), all of it once its last moment is older than
    the window (`history_kept_until`)."""
    start = now - timedelta(days=window_days)
    ranges = recoverable_ranges(chains, bases)
    if current_chain_id is None and ranges and max(r.end for r in ranges) <= start:
        # Continuous backups are off and their last moment left the window: all of it goes.
        return PitrExpiry(list(bases), list(chains), {})
    ordered = sorted(bases, key=lambda b: b.finished_at)
    before = [b for b in ordered if b.finished_at <= start]
    anchor = before[-1] if before else None
    kept = [b for b in ordered if anchor is None or b.finished_at >= anchor.finished_at]
    delete_bases = [b for b in ordered if b not in kept]
    delete_chains = []
    wal_floor: dict[str, int] = {}
    for chain in chains:
        own = [b for b in kept if b.chain_id == chain.id]
        if own:
            wal_floor[chain.id] = min(b.start_lsn for b in own)
        elif chain.id != current_chain_id and (
            (chain.broken_at is not None and chain.broken_at <= start)
            or any(b.chain_id == chain.id for b in delete_bases)
        ):
            delete_chains.append(chain)
    return PitrExpiry(delete_bases, delete_chains, wal_floor)
