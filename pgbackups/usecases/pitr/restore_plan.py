"""What a point-in-time restore downloads (archive-get): a base backup and WAL, a page
at a time, as presigned URLs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pgbackups.domain.errors import (
    InvalidInput,
    PitrDisabled,
    RecoveryWindowMoved,
    WalMissing,
)
from pgbackups.domain.pitr import WAL_FILE_NAME, WalFile
from pgbackups.domain.recovery import RestorePoint, recoverable_ranges, restore_point
from pgbackups.postgres import lsn
from pgbackups.services import Services

# A restore downloads everything within this (the longest a presigned URL may live).
RESTORE_URL_LIFETIME = timedelta(hours=1)
RESTORE_PAGE_SIZE = 1000  # WAL files per page: about 1 MB of presigned URLs


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
    end_lsn: int  # where the chain's stored WAL ends (acknowledged) when this page was made


def parse_target_time(value: str) -> datetime | None:
    """A restore's target: `latest` (None), or an RFC 3339 time with its offset."""
    if value == "latest":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"target_time: {value[:64]!r} is not an RFC 3339 time (or `latest`)",
            field="target_time",
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput("target_time: give the time zone (e.g. Z)", field="target_time")
    return moment.astimezone(UTC)


def plan_restore(
    services: Services,
    database: str,
    target: datetime | None,
    *,
    cursor: str | None = None,
    limit: int = RESTORE_PAGE_SIZE,
) -> RestorePlan:
    """What a restore to `target` (None: latest) downloads, from `cursor` on;
    OutsideRecoveryWindow first (a gap, or outside every range), PitrDisabled when
    continuous backups are off and no stored history is left."""
    services.catalog.get_database(database)
    state = services.pitr.get_state(database)
    chains = services.pitr.chains(database)
    bases = services.pitr.base_backups(database)
    enabled = state is not None and state.enabled
    if not enabled and not recoverable_ranges(chains, bases):
        raise PitrDisabled(
            f"continuous backups of {database} are disabled and no stored history is "
            "left: there is nothing to restore to a point in time. Enable them "
            "(`pgbackups pitr-enable`) to restore later moments"
        )
    point = restore_point(chains, bases, target)
    after = _after(cursor, point.base.id)
    files = wal_to_replay(point, services.pitr.wal_files(database, point.chain.id))
    remaining = [f for f in files if f.name > after]
    page = remaining[:limit]
    more = len(remaining) > limit
    return RestorePlan(
        point,
        page,
        len(files),
        f"{point.base.id}.{page[-1].name}" if more else None,
        point.chain.archived_lsn,
    )


def wal_to_replay(point: RestorePoint, recorded: list[WalFile]) -> list[WalFile]:
    """The WAL files of the catalog that restore `point`, in order, contiguous from the
    base backup's start segment; WalMissing (before anything is downloaded) when one that
    replay needs is missing.

    Replay needs the base backup's WAL up to its end, then, for a time, the file of the
    first commit after it (recovery stops before that one), or for the latest state the
    chain's whole stored WAL; nothing after that (the current partial file, rewritten
    by every capture, only when replay needs it). Only records
    whose name and key are what the capture writes count: a name from the catalog
    becomes a file name on the client.
    """
    chain, base = point.chain, point.base
    size = chain.segment_size
    files = {
        f.name: f
        for f in recorded
        if chain.stores(f) and f.start_lsn == lsn.segment_start(f.name, size)
    }
    need = max(base.end_lsn, _target_end(point, list(files.values())))
    plan: list[WalFile] = []
    position = base.start_lsn - base.start_lsn % size
    while position < need:
        file = files.get(lsn.segment_name(chain.timeline, position, size))
        if file is None:
            break
        plan.append(file)
        if file.partial:
            break
        position += size
    reached = plan[-1].end_lsn if plan else position
    if reached < need:
        missing = lsn.segment_name(chain.timeline, reached - reached % size, size)
        raise WalMissing(
            f"the WAL file {missing} that this restore needs is not in the catalog: it was "
            "lost, or archived before WAL files were recorded there (such chains cannot be "
            "restored through a plan; restore to a time a newer base backup covers). "
            "Nothing was downloaded",
            segment=missing,
        )
    return plan


def _target_end(point: RestorePoint, files: list[WalFile]) -> int:
    """Where the WAL this restore must replay ends (`files` in name order)."""
    if point.target is not None:
        target = point.target
        stop = next((f for f in files if f.last_commit_at and f.last_commit_at > target), None)
        if stop is not None:
            return stop.end_lsn
    return point.chain.archived_lsn


def _after(cursor: str | None, base_id: str) -> str:
    """The last WAL file name of the previous page ("" for the first page)."""
    if cursor is None:
        return ""
    cursor_base, _, name = cursor.partition(".")
    if not WAL_FILE_NAME.fullmatch(name):
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
                "sha256": f.sha256,
                "size": f.size,
            }
            for f in plan.wal
        ],
        "wal_total": plan.wal_total,
        "next_cursor": plan.next_cursor,
        "end_lsn": lsn.format_lsn(plan.end_lsn),
        "expires_at": expires,
    }
