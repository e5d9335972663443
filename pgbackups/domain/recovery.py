"""What continuous backups can recover: the recoverable ranges of the chains, the breaks
between them, the restore point a target time leads to, and what expires.

A moment is recoverable when some chain has a base backup finished before it and a
commit at or after it; where two chains' ranges meet, the newer one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pgbackups.domain.errors import (
    OutsideRecoveryWindow,
)
from pgbackups.domain.models import to_rfc3339
from pgbackups.domain.pitr import BaseBackup, PitrState, WalChain

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
