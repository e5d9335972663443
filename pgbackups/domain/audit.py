"""The audit trail's entries and their hash chain: no I/O.

Entry n holds the SHA-256 of entry n-1 (`prev`) and its own `hash`, computed
over its canonical JSON (sorted keys, no spaces, ASCII) including `prev`. So
changing an entry changes its hash, and removing one breaks its successor's
`prev` or the sequence; the head (the last sequence number and hash, kept
apart) catches the removal of the newest entries.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

AUDIT_RETENTION = timedelta(days=400)
GENESIS = "0" * 64  # the `prev` of the first entry


@dataclass(frozen=True)
class AuditEvent:
    """What happened, before it takes its place in the chain."""

    at: str  # RFC 3339, UTC
    token: str  # the token's name, "-" when the request carried none we know
    role: str  # "" when unknown
    source_ip: str
    method: str
    route: str  # e.g. "DELETE /v1/databases/{db}/backups/{id}"
    target: str  # the request's path
    database: str  # "" when the route names none
    status: int


@dataclass(frozen=True)
class AuditEntry(AuditEvent):
    seq: int = 0
    prev: str = GENESIS
    hash: str = ""

    def fields(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str


EMPTY_HEAD = ChainHead(0, GENESIS)


def canonical_json(fields: dict[str, Any]) -> bytes:
    return json.dumps(
        {name: value for name, value in fields.items() if name != "hash"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode()


def entry_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(canonical_json(entry.fields())).hexdigest()


def chained(event: AuditEvent, head: ChainHead) -> AuditEntry:
    """`event` as the entry after `head`."""
    entry = AuditEntry(**asdict(event), seq=head.seq + 1, prev=head.hash)
    return replace(entry, hash=entry_hash(entry))


def expires_at(entry: AuditEntry) -> datetime:
    return datetime.fromisoformat(entry.at) + AUDIT_RETENTION


@dataclass(frozen=True)
class ChainBreak:
    seq: int  # the first entry that does not check out (or the head's)
    reason: str


def verify_chain(entries: list[AuditEntry], head: ChainHead) -> ChainBreak | None:
    """The first place where `entries` (oldest first, as stored) stop being the chain
    `head` ends, or None when every entry checks out.

    The oldest entries expire (`AUDIT_RETENTION`), so the oldest one present may
    follow an entry that is gone; every later link is checked.
    """
    previous: AuditEntry | None = None
    for entry in entries:
        if entry_hash(entry) != entry.hash:
            return ChainBreak(entry.seq, f"entry {entry.seq} was changed after it was written")
        if previous is None:
            if entry.seq == 1 and entry.prev != GENESIS:
                return ChainBreak(entry.seq, "entry 1 does not start the chain")
        elif entry.seq != previous.seq + 1:
            return ChainBreak(
                previous.seq + 1,
                f"entries {previous.seq + 1} to {entry.seq - 1} are missing",
            )
        elif entry.prev != previous.hash:
            return ChainBreak(
                entry.seq, f"entry {entry.seq} does not hold the hash of entry {previous.seq}"
            )
        previous = entry
    last = previous or AuditEntry(**asdict(_NOTHING), seq=0, hash=GENESIS)
    if (last.seq, last.hash) != (head.seq, head.hash):
        if head.seq > last.seq:
            return ChainBreak(
                last.seq + 1, f"entries {last.seq + 1} to {head.seq} (the newest) are missing"
            )
        return ChainBreak(head.seq, f"the chain's head does not match entry {last.seq}")
    return None


_NOTHING = AuditEvent("", "", "", "", "", "", "", "", 0)
