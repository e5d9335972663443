"""Restores run by the stack: their records, and the lock a target holds while one runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field
from ulid import ULID

from pgbackups.domain.models import Run

RestoreKind = Literal["backup", "point_in_time"]


class RestoreCounts(BaseModel):
    """How far a restore got: pg_restore's entries done, of those it will work through."""

    restored: int = 0
    total: int | None = None


# What a restore that did not finish says of its target.
PARTIAL_TARGET = "the target may be partial"


class RestoreRecord(Run):
    """A restore run by the stack into a target database (`POST …/restores`).

    The target's URL is never here: it lives in a secret of the restore's own, deleted
    when the run ends; `target` is its `host:port/dbname`, enough to recognise it.
    """

    what: ClassVar[str] = "restore"

    kind: RestoreKind = "backup"
    backup_id: str | None = None
    target_time: datetime | None = None
    target: str
    tables: list[str] = Field(default_factory=list)
    schemas: list[str] = Field(default_factory=list)
    clean: bool = True
    progress: RestoreCounts = Field(default_factory=RestoreCounts)
    warnings: list[str] = Field(default_factory=list)

    @classmethod
    def new(
        cls,
        database: str,
        backup_id: str | None,
        target: str,
        created_at: datetime,
        *,
        tables: list[str],
        schemas: list[str],
        clean: bool,
        target_time: datetime | None = None,
    ) -> RestoreRecord:
        """A backup's restore, or (no `backup_id`) one to `target_time` (None: latest)."""
        return cls(
            id=str(ULID.from_datetime(created_at)),
            database=database,
            kind="backup" if backup_id is not None else "point_in_time",
            backup_id=backup_id,
            target_time=target_time,
            target=target,
            tables=tables,
            schemas=schemas,
            clean=clean,
            created_at=created_at,
        )

    def interrupted(self, reason: str, at: datetime) -> RestoreRecord:
        """`error` for `reason`, saying the target may hold part of what was restored."""
        failed = self.failed(reason, at)
        return failed.model_copy(update={"warnings": [*self.warnings, self.partial_warning()]})

    @property
    def target_may_be_partial(self) -> bool:
        """Whether pg_restore (or the move) ran before this restore failed."""
        return any(warning.startswith(PARTIAL_TARGET) for warning in self.warnings)

    def partial_warning(self) -> str:
        done, total = self.progress.restored, self.progress.total
        if self.kind == "backup":
            of = f" of {total}" if total is not None else ""
            what = f"{done}{of} entries of the archive were restored into"
        elif total is None and done:  # pg_restore's entries of the move
            what = f"{done} entries of the recovered database were moved into"
        else:  # still recovering when last recorded (WAL files of the plan's)
            what = "part of the recovered database may have been moved into"
        return (
            f"{PARTIAL_TARGET}: {what} {self.target} before the restore stopped; "
            "restore again (clean) to redo it"
        )


@dataclass(frozen=True)
class TargetLock:
    """A restore target's lock: which restore of which database holds it."""

    target: str  # host:port/dbname
    database: str
    restore_id: str
