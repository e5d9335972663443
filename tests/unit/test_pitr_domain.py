"""The recovery window, restore points and retention of continuous backups; LSN arithmetic."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tarfile
from datetime import UTC, datetime, timedelta

import pytest

from pgbackups.domain.errors import OutsideRecoveryWindow
from pgbackups.domain.pitr import (
    BASE_BACKUP_RETRY_AFTER,
    BaseBackup,
    BaseBackupRun,
    PitrState,
    WalChain,
    base_backup_due,
    slot_name,
)
from pgbackups.domain.recovery import plan_pitr_expiry, recovery_window, restore_point
from pgbackups.postgres.basebackup import ManifestTail
from pgbackups.postgres.lsn import parse_lsn

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SEG = 16 * 1024 * 1024


def chain(
    chain_id: str, *, archived: int, last_commit: datetime | None, **extra: object
) -> WalChain:
    return WalChain(
        id=chain_id, database="shop", system_id="1", timeline=1, segment_size=SEG,
        server_version_num=180006, source_database="shop", source_user="postgres",
        started_at=T0, start_lsn=0, position=archived, archived_lsn=archived,
        last_commit_at=last_commit, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def base(base_id: str, chain_id: str, finished: datetime, start: int, end: int) -> BaseBackup:
    return BaseBackup(
        id=base_id, database="shop", chain_id=chain_id, started_at=finished - timedelta(minutes=1),
        finished_at=finished, start_lsn=start, end_lsn=end, timeline=1, size=1, sha256="0" * 64,
        server_version_num=180006,
    )  # fmt: skip


def test_slot_names_are_valid_postgres_identifiers() -> None:
    assert slot_name("my-shop_2", "0f3c9a7e") == "pgbackups_my_shop_2_0f3c9a7e"
    longest = slot_name("a" * 63, "0f3c9a7e")
    assert len(longest) == 63 and longest.endswith("a_0f3c9a7e")
    assert re.fullmatch("[a-z0-9_]{1,63}", longest)


def test_a_database_enabled_before_unique_slot_names_keeps_its_slot() -> None:
    assert PitrState(database="my-shop").replication_slot == "pgbackups_my_shop"
    named = PitrState(database="my-shop", slot="pgbackups_my_shop_0f3c9a7e")
    assert named.replication_slot == "pgbackups_my_shop_0f3c9a7e"


def test_window_runs_from_the_oldest_base_backup_to_the_newest_archived_commit() -> None:
    chains = [chain("A", archived=10 * SEG, last_commit=T0 + timedelta(hours=5))]
    bases = [
        base("b1", "A", T0, SEG, 2 * SEG),
        base("b2", "A", T0 + timedelta(hours=2), 3 * SEG, 4 * SEG),
    ]
    window = recovery_window(chains, bases)
    assert (window.earliest, window.latest) == (T0, T0 + timedelta(hours=5))


def test_a_base_backup_counts_once_the_wal_to_its_end_is_archived() -> None:
    chains = [chain("A", archived=2 * SEG, last_commit=T0 + timedelta(hours=1))]
    assert recovery_window(chains, [base("b1", "A", T0, SEG, 3 * SEG)]).earliest is None


def test_restore_point_picks_the_newest_base_before_the_target_and_replays_to_the_end_after_the_last_commit() -> (
    None
):
    chains = [chain("A", archived=10 * SEG, last_commit=T0 + timedelta(hours=5))]
    bases = [
        base("b1", "A", T0, SEG, 2 * SEG),
        base("b2", "A", T0 + timedelta(hours=2), 3 * SEG, 4 * SEG),
    ]
    point = restore_point(chains, bases, T0 + timedelta(hours=3))
    assert (point.base.id, point.target) == ("b2", T0 + timedelta(hours=3))
    assert restore_point(chains, bases, T0 + timedelta(hours=1)).base.id == "b1"
    assert restore_point(chains, bases, T0 + timedelta(hours=5)).target is None
    assert restore_point(chains, bases, None).target is None
    for outside in (T0 - timedelta(seconds=1), T0 + timedelta(hours=5, seconds=1)):
        with pytest.raises(OutsideRecoveryWindow, match="outside the recovery window"):
            restore_point(chains, bases, outside)


def test_a_broken_chain_stays_restorable_for_its_own_stretch() -> None:
    old = chain(
        "A",
        archived=10 * SEG,
        last_commit=T0 + timedelta(hours=1),
        broken_at=T0 + timedelta(hours=2),
    )
    new = chain("B", archived=10 * SEG, last_commit=T0 + timedelta(hours=6))
    bases = [
        base("a1", "A", T0, SEG, 2 * SEG),
        base("b1", "B", T0 + timedelta(hours=3), SEG, 2 * SEG),
    ]
    assert restore_point([old, new], bases, T0 + timedelta(minutes=30)).chain.id == "A"
    assert restore_point([old, new], bases, T0 + timedelta(hours=4)).chain.id == "B"
    with pytest.raises(OutsideRecoveryWindow):  # the gap between the chains
        restore_point([old, new], bases, T0 + timedelta(hours=2))


def test_retention_keeps_the_base_backup_that_starts_the_window_and_what_it_needs() -> None:
    chains = [chain("A", archived=30 * SEG, last_commit=T0 + timedelta(days=20))]
    bases = [
        base("b1", "A", T0, SEG, 2 * SEG),
        base("b2", "A", T0 + timedelta(days=7), 10 * SEG, 11 * SEG),
        base("b3", "A", T0 + timedelta(days=14), 20 * SEG, 21 * SEG),
    ]
    plan = plan_pitr_expiry(chains, bases, "A", 7, T0 + timedelta(days=16))
    assert [b.id for b in plan.delete_bases] == ["b1"]
    assert plan.wal_floor == {"A": 10 * SEG}
    assert plan.delete_chains == []
    keep_all = plan_pitr_expiry(chains, bases, "A", 30, T0 + timedelta(days=16))
    assert keep_all.delete_bases == [] and keep_all.wal_floor == {"A": SEG}


def test_retention_drops_a_broken_chain_once_its_base_backups_are_gone() -> None:
    old = chain("A", archived=5 * SEG, last_commit=T0, broken_at=T0 + timedelta(hours=1))
    new = chain("B", archived=5 * SEG, last_commit=T0 + timedelta(days=9))
    bases = [
        base("a1", "A", T0, SEG, 2 * SEG),
        base("b1", "B", T0 + timedelta(days=1), SEG, 2 * SEG),
    ]
    plan = plan_pitr_expiry([old, new], bases, "B", 7, T0 + timedelta(days=9))
    assert [b.id for b in plan.delete_bases] == ["a1"]
    assert [c.id for c in plan.delete_chains] == ["A"]


# -- base backups: when one is due, when one on its way is given up -----------------------

STATE = PitrState(database="shop", enabled=True, status="ok", chain_id="A")


def test_a_base_backup_is_due_for_a_new_chain_and_every_few_days() -> None:
    current = chain("A", archived=SEG, last_commit=None)
    assert base_backup_due(STATE, current, [], None, T0), "a chain without one"
    older_chain = [base("1", "OLD", T0, 0, SEG)]
    assert base_backup_due(STATE, current, older_chain, None, T0), "after a break"
    own = [base("1", "A", T0, 0, SEG)]
    week = timedelta(days=STATE.base_backup_every_days)
    assert not base_backup_due(STATE, current, own, None, T0 + week - timedelta(minutes=2))
    assert base_backup_due(STATE, current, own, None, T0 + week)


def test_not_due_while_one_is_on_its_way_unless_it_is_stuck() -> None:
    current = chain("A", archived=SEG, last_commit=None)
    scheduled = BaseBackupRun.new("shop", "A", T0)
    assert not base_backup_due(STATE, current, [], scheduled, T0 + timedelta(minutes=29))
    assert base_backup_due(STATE, current, [], scheduled, T0 + timedelta(minutes=31))
    assert "never started" in (scheduled.abandoned_reason(T0 + timedelta(minutes=31)) or "")

    running = scheduled.model_copy(
        update={
            "status": "running",
            "started_at": T0,
            "runner": "fargate",
            "deadline_at": T0 + timedelta(hours=6),
        }
    )
    assert not base_backup_due(STATE, current, [], running, T0 + timedelta(hours=6, minutes=4))
    assert base_backup_due(STATE, current, [], running, T0 + timedelta(hours=6, minutes=6))
    reason = running.abandoned_reason(T0 + timedelta(hours=6, minutes=6))
    assert reason == (
        "timed out: the fargate run stopped without finishing (no result 366 minutes after "
        "it started)"
    )


def test_a_failed_base_backup_is_asked_for_again_after_a_while() -> None:
    current = chain("A", archived=SEG, last_commit=None)
    failed = BaseBackupRun.new("shop", "A", T0).failed("pg_basebackup: refused", T0)
    assert not base_backup_due(STATE, current, [], failed, T0 + timedelta(minutes=1))
    assert base_backup_due(STATE, current, [], failed, T0 + BASE_BACKUP_RETRY_AFTER)
    # One that failed because its chain ended does not delay the new chain's.
    ended = BaseBackupRun.new("shop", "OLD", T0).failed("the chain broke", T0)
    assert base_backup_due(STATE, current, [], ended, T0 + timedelta(minutes=1))


def test_the_manifest_tail_finds_the_wal_range_at_the_end_of_a_compressed_tar() -> None:
    manifest = {
        "PostgreSQL-Backup-Manifest-Version": 1,
        "Files": [{"Path": f"base/1/{n}", "Size": 8192} for n in range(5000)],
        "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000138"}],
        "Manifest-Checksum": "0" * 64,
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in (
            ("base/1/1", os.urandom(3 * 1024 * 1024)),  # more than one tail's worth
            ("backup_manifest", json.dumps(manifest, indent=1).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    compressed = gzip.compress(raw.getvalue(), compresslevel=1)
    tail = ManifestTail()
    for offset in range(0, len(compressed), 65536):
        tail.feed(memoryview(compressed[offset : offset + 65536]))
    assert tail.wal_range() == (parse_lsn("0/2000028"), parse_lsn("0/2000138"))
    assert ManifestTail().wal_range() is None
