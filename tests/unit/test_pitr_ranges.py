"""Recoverable ranges of continuous backups: gaps, overlaps, the base backup that starts a
range, time zones, the breaks between ranges and how long kept history lasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pgbackups.domain.errors import OutsideRecoveryWindow
from pgbackups.domain.pitr import BaseBackup, PitrState, WalChain
from pgbackups.domain.recovery import (
    breaks,
    history_kept_until,
    plan_pitr_expiry,
    recoverable_ranges,
    restore_point,
)
from tests.unit.test_pitr_domain import SEG, T0, base, chain

pytestmark = pytest.mark.unit

H = timedelta(hours=1)


def two_chains_with_a_gap() -> tuple[list[WalChain], list[BaseBackup]]:
    """Chain A restores T0..T0+2h and broke at T0+2h30; chain B from T0+4h to T0+6h."""
    chains = [
        chain(
            "A", archived=10 * SEG, last_commit=T0 + 2 * H,
            broken_at=T0 + 2.5 * H, broken_reason="the replication slot was dropped",
        ),
        chain("B", archived=10 * SEG, last_commit=T0 + 6 * H),
    ]  # fmt: skip
    bases = [base("a1", "A", T0, SEG, 2 * SEG), base("b1", "B", T0 + 4 * H, SEG, 2 * SEG)]
    return chains, bases


def test_each_chain_gives_a_range_and_the_gap_between_them_shows() -> None:
    chains, bases = two_chains_with_a_gap()
    ranges = recoverable_ranges(chains, bases)
    assert [(r.start, r.end, r.base.id) for r in ranges] == [
        (T0, T0 + 2 * H, "a1"),
        (T0 + 4 * H, T0 + 6 * H, "b1"),
    ]


def test_a_time_in_the_gap_is_refused_naming_both_neighbours() -> None:
    chains, bases = two_chains_with_a_gap()
    with pytest.raises(OutsideRecoveryWindow) as refused:
        restore_point(chains, bases, T0 + 3 * H)
    assert refused.value.details["before"] == "2026-03-01T14:00:00Z"
    assert refused.value.details["after"] == "2026-03-01T16:00:00Z"
    assert "2026-03-01T14:00:00Z (before)" in refused.value.message
    assert "2026-03-01T16:00:00Z (after)" in refused.value.message


def test_the_seconds_around_a_gap_restore_from_their_own_chain() -> None:
    chains, bases = two_chains_with_a_gap()
    assert restore_point(chains, bases, T0 + 2 * H).chain.id == "A"
    assert restore_point(chains, bases, T0 + 4 * H).chain.id == "B"
    for inside in (T0 + 2 * H + timedelta(seconds=1), T0 + 4 * H - timedelta(seconds=1)):
        with pytest.raises(OutsideRecoveryWindow):
            restore_point(chains, bases, inside)


def test_before_the_first_and_after_the_last_range_one_neighbour_is_null() -> None:
    chains, bases = two_chains_with_a_gap()
    with pytest.raises(OutsideRecoveryWindow) as early:
        restore_point(chains, bases, T0 - timedelta(seconds=1))
    assert early.value.details == {
        "field": "target_time",
        "before": None,
        "after": "2026-03-01T12:00:00Z",
    }
    with pytest.raises(OutsideRecoveryWindow) as late:
        restore_point(chains, bases, T0 + 7 * H)
    assert late.value.details["before"] == "2026-03-01T18:00:00Z"
    assert late.value.details["after"] is None


def test_overlapping_chains_the_newer_restores_the_overlap() -> None:
    # The old chain's last commit (the server's clock) is after the new chain's first
    # base backup ended (ours): the ranges do not overlap, the newer one wins.
    chains = [
        chain("A", archived=10 * SEG, last_commit=T0 + 3 * H, broken_at=T0 + 3 * H),
        chain("B", archived=10 * SEG, last_commit=T0 + 5 * H),
    ]
    bases = [base("a1", "A", T0, SEG, 2 * SEG), base("b1", "B", T0 + 2 * H, SEG, 2 * SEG)]
    ranges = recoverable_ranges(chains, bases)
    assert [(r.start, r.end, r.chain.id) for r in ranges] == [
        (T0, T0 + 2 * H, "A"),
        (T0 + 2 * H, T0 + 5 * H, "B"),
    ]
    assert restore_point(chains, bases, T0 + 2.5 * H).chain.id == "B"
    assert restore_point(chains, bases, T0 + 1 * H).chain.id == "A"


def test_an_older_range_inside_a_newer_one_is_left_out() -> None:
    chains = [
        chain("A", archived=10 * SEG, last_commit=T0 + 3 * H, broken_at=T0 + 3 * H),
        chain("B", archived=10 * SEG, last_commit=T0 + 5 * H),
    ]
    bases = [base("a1", "A", T0 + 2 * H, SEG, 2 * SEG), base("b1", "B", T0 + H, SEG, 2 * SEG)]
    assert [r.chain.id for r in recoverable_ranges(chains, bases)] == ["B"]


def test_the_range_starts_with_the_first_base_backup_whose_wal_is_stored() -> None:
    # b0 ended at 3 segments but only 2 are stored: it restores nothing (yet).
    chains = [chain("A", archived=2 * SEG, last_commit=T0 + 5 * H)]
    bases = [
        base("b0", "A", T0 - H, SEG, 3 * SEG),
        base("b1", "A", T0, SEG, 2 * SEG),
        base("b2", "A", T0 + 2 * H, SEG, 2 * SEG),
    ]
    (found,) = recoverable_ranges(chains, bases)
    assert (found.start, found.base.id) == (T0, "b1")
    assert restore_point(chains, bases, T0 + 3 * H).base.id == "b2"


def test_targets_in_other_time_zones_are_the_same_moments() -> None:
    chains, bases = two_chains_with_a_gap()
    paris = timezone(timedelta(hours=2))
    # 15:00+02:00 is 13:00Z: in A's range; 17:00+02:00 is 15:00Z: in the gap.
    assert restore_point(chains, bases, datetime(2026, 3, 1, 15, 0, tzinfo=paris)).chain.id == "A"
    with pytest.raises(OutsideRecoveryWindow) as refused:
        restore_point(chains, bases, datetime(2026, 3, 1, 17, 0, tzinfo=paris))
    assert refused.value.message.startswith("2026-03-01T15:00:00Z")


def test_breaks_say_when_restoring_was_possible_again() -> None:
    chains, bases = two_chains_with_a_gap()
    chains.append(chain("C", archived=SEG, last_commit=None))
    chains[1] = chains[1].model_copy(
        update={"broken_at": T0 + 7 * H, "broken_reason": "gap: the slot starts at 0/5000000"}
    )
    found = breaks(chains, bases)
    assert [(b.chain_id, b.at, b.recovered_at, b.gap_seconds) for b in found] == [
        ("A", T0 + 2.5 * H, T0 + 4 * H, 1.5 * 3600),
        ("B", T0 + 7 * H, None, None),  # C has no base backup yet: the break lasts
    ]
    assert found[0].reason == "the replication slot was dropped"


def test_disabled_history_is_kept_one_window_after_its_last_moment() -> None:
    chains, bases = two_chains_with_a_gap()
    ranges = recoverable_ranges(chains, bases)
    off = PitrState(database="shop", enabled=False, window_days=3, chain_id="B")
    assert history_kept_until(off, ranges) == T0 + 6 * H + timedelta(days=3)
    assert history_kept_until(off.model_copy(update={"enabled": True}), ranges) is None
    assert history_kept_until(off, []) is None
    # Retention (continuous backups off) keeps the last range until then (the older
    # one left the window), then nothing.
    kept = plan_pitr_expiry(chains, bases, None, 3, T0 + 6 * H + timedelta(days=3) - H)
    assert [b.id for b in kept.delete_bases] == ["a1"]
    assert [c.id for c in kept.delete_chains] == ["A"]
    gone = plan_pitr_expiry(chains, bases, None, 3, T0 + 6 * H + timedelta(days=3))
    assert gone.delete_bases == bases and gone.delete_chains == chains
    # While on, the newest base backup before the window stays.
    on = plan_pitr_expiry(chains, bases, "B", 3, T0 + timedelta(days=30))
    assert [b.id for b in on.delete_bases] == ["a1"]


def test_times_are_utc_whatever_zone_they_were_given_in() -> None:
    chains, bases = two_chains_with_a_gap()
    (first, _) = recoverable_ranges(chains, bases)
    assert first.start.utcoffset() == timedelta(0) and first.start.tzinfo is UTC
