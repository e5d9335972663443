"""What a point-in-time restore downloads (archive-get): a base backup and WAL, a page
at a time, as presigned URLs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pgbackups.domain.errors import InvalidInput, PitrNotEnabled, RecoveryWindowMoved
from pgbackups.domain.pitr import RestorePoint, restore_point
from pgbackups.ports import Services
from pgbackups.postgres import wal

# A restore downloads everything within this (the longest a presigned URL may live).
RESTORE_URL_LIFETIME = timedelta(hours=1)
RESTORE_PAGE_SIZE = 1000  # WAL files per page: about 1 MB of presigned URLs


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
        if wal.segment_start(name, chain.segment_size) < first:
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
