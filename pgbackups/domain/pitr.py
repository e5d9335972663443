"""Continuous backups (point-in-time recovery): settings, chains, WAL files, base backups.

A *chain* is one unbroken stretch of WAL from one server (system id, timeline),
captured from the reserved slot, with the base backups taken during it. A gap,
a new system id or timeline, or a lost slot ends a chain (`broken`) and starts a
new one. A moment is recoverable when some chain has a base backup finished
before it and a commit at or after it (`pgbackups.domain.recovery`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from ulid import ULID

from pgbackups.domain.models import Run, RunnerName

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
