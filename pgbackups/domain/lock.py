"""Object Lock: how long S3 refuses to destroy what the stack wrote (SPEC §4, README).

Every archive, base backup and complete WAL segment is written with a retain-until
date, `days` after it was written; a periodic backup that retention keeps longer (the
Sunday one kept as weekly, the first Sunday's as monthly) gets a later date as soon
as retention first keeps it. Dates only move forward: S3 refuses to shorten them in
compliance mode, and the stack never asks in governance mode either.

Pure rules, no I/O: `pgbackups.adapters.archives.ArchiveStore` writes the dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pgbackups.domain.errors import BackupLocked
from pgbackups.domain.models import BackupRecord, RetentionPolicy, to_rfc3339

LockMode = Literal["off", "governance", "compliance"]
LOCK_MODES: tuple[LockMode, ...] = ("off", "governance", "compliance")
DEFAULT_LOCK_MODE: LockMode = "governance"
DEFAULT_LOCK_DAYS = 7
SUNDAY = 6  # date.weekday()


@dataclass(frozen=True)
class BackupLock:
    """The stack's Object Lock setting (template parameters BackupLock, BackupLockDays)."""

    mode: LockMode = DEFAULT_LOCK_MODE
    days: int = DEFAULT_LOCK_DAYS

    def __post_init__(self) -> None:
        if self.mode not in LOCK_MODES:
            raise ValueError(
                f"unknown backup lock {self.mode!r}: use off, governance or compliance"
            )
        if not 1 <= self.days <= 36500:
            raise ValueError(f"backup lock days must be between 1 and 36500, not {self.days}")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def until(self, written_at: datetime) -> datetime | None:
        """The retain-until date of an object written at `written_at` (None: no lock).

        Whole seconds, rounded up, so the date S3 keeps is exactly the one recorded."""
        if not self.enabled:
            return None
        moment = written_at.astimezone(UTC) + timedelta(days=self.days)
        return moment.replace(microsecond=0) + timedelta(seconds=1 if moment.microsecond else 0)


NO_LOCK = BackupLock("off")


def retention_keeps_until(
    policy: RetentionPolicy, backup: BackupRecord, tz: ZoneInfo
) -> datetime | None:
    """The latest date retention can keep periodic `backup` once it keeps it as its day's
    backup: the end of its day's daily window, or of its Sunday's weekly one, or of its
    first Sunday's monthly one, whichever ends last (None for a manual backup: those go
    by count, not by date)."""
    if backup.method != "periodic":
        return None
    day = backup.created_at.astimezone(tz).date()
    last = day + timedelta(days=policy.daily)
    if day.weekday() == SUNDAY and policy.weekly:
        last = max(last, day + timedelta(weeks=policy.weekly))
    if day.weekday() == SUNDAY and day.day <= 7 and policy.monthly:
        last = max(last, _first_sunday_months_later(day, policy.monthly))
    return datetime.combine(last, time(), tzinfo=tz).astimezone(UTC)


def _first_sunday_months_later(day: date, months: int) -> date:
    """The first Sunday of the month `months` after `day`'s: the day the first Sunday
    `day` was leaves the last `months` first Sundays."""
    index = day.year * 12 + day.month - 1 + months
    first = date(index // 12, index % 12 + 1, 1)
    return first + timedelta(days=(SUNDAY - first.weekday()) % 7)


def is_protected(backup: BackupRecord, now: datetime) -> bool:
    """Whether S3 (or a legal hold) still keeps `backup` from being deleted at `now`."""
    if backup.legal_hold:
        return True
    return backup.locked_until is not None and backup.locked_until > now


def locked_error(backup: BackupRecord) -> BackupLocked:
    """Why `backup` cannot be deleted now (`is_protected`), with its date and hold."""
    until = to_rfc3339(backup.locked_until) if backup.locked_until else None
    if backup.legal_hold:
        message = f"backup {backup.id} is under a legal hold: release it first"
    else:
        message = f"backup {backup.id} is locked until {until}: it can be deleted after that"
    return BackupLocked(message, locked_until=until, legal_hold=backup.legal_hold)
