"""The audit trail: record what was done or refused, list it, verify its chain."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime

from pgbackups.domain.audit import (
    AuditEntry,
    AuditEvent,
    ChainBreak,
    ChainHead,
    chained,
    verify_chain,
)
from pgbackups.domain.errors import InvalidInput
from pgbackups.ports import AuditLog

_APPEND_ATTEMPTS = 12


class AuditUnavailable(RuntimeError):
    """Other writers kept taking the head's place; the entry is not recorded."""


def record(log: AuditLog, event: AuditEvent) -> AuditEntry:
    """Appends `event` after the current head, retrying while others append."""
    for attempt in range(_APPEND_ATTEMPTS):
        entry = chained(event, log.head())
        if log.append(entry):
            return entry
        time.sleep(random.uniform(0.01, 0.05) * min(2**attempt, 16))  # noqa: S311 (jitter)
    raise AuditUnavailable("the audit trail is busy: the entry could not be appended")


@dataclass(frozen=True)
class AuditFilter:
    database: str | None = None
    token: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def keeps(self, entry: AuditEntry) -> bool:
        at = datetime.fromisoformat(entry.at)
        return (
            (self.database is None or entry.database == self.database)
            and (self.token is None or entry.token == self.token)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
        )


def _cursor_seq(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 12:
        raise InvalidInput("invalid cursor", field="cursor")
    return int(cursor)


def list_entries(
    log: AuditLog, where: AuditFilter, *, limit: int, cursor: str | None = None
) -> tuple[list[AuditEntry], str | None]:
    """Entries newest first, `limit` per page; the cursor is the last one's sequence."""
    found: list[AuditEntry] = []
    for entry in log.entries(newest_first=True, after=_cursor_seq(cursor)):
        if where.since is not None and datetime.fromisoformat(entry.at) < where.since:
            break  # older ones only from here on
        if where.keeps(entry):
            found.append(entry)
            if len(found) == limit:
                return found, str(entry.seq)
    return found, None


@dataclass(frozen=True)
class Verification:
    entries: int
    head: ChainHead
    first_seq: int | None
    problem: ChainBreak | None


def verify(log: AuditLog) -> Verification:
    """Reads the whole chain, oldest first, and says where it breaks, if it does."""
    head = log.head()
    entries = list(log.entries(newest_first=False))
    return Verification(
        entries=len(entries),
        head=head,
        first_seq=entries[0].seq if entries else None,
        problem=verify_chain(entries, head),
    )
