"""Whether a database's backups can be counted on, and what to tell a person when not.

A database is `ok`, `warning` or `failing`, with one reason per problem. Each reason is
an incident with a stable `code` and the moment it began (`since`): an alert is sent
when a code appears and a recovery message when it goes, never once per hourly run.
No I/O: the dispatcher and the backup hand in what they read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pgbackups.domain.models import (
    BackupRecord,
    DatabaseRecord,
    Health,
    HealthReason,
    HealthStatus,
)
from pgbackups.domain.restores import RestoreRecord
from pgbackups.domain.schedule import CATCH_UP_LIMIT
from pgbackups.domain.verifications import overdue_since

# A daily schedule's backup is due once a local day (23 to 25 hours apart around a DST
# change), and may come as late as the catch-up window allows: older than that, the
# schedule missed a day.
DEFAULT_STALE_AFTER = timedelta(days=1) + CATCH_UP_LIMIT
DEFAULT_LAG_LIMIT = timedelta(minutes=15)


@dataclass(frozen=True)
class PitrHealth:
    """What the health rules need of a database's continuous backups."""

    broken_reason: str | None
    broken_since: datetime | None
    lag: timedelta | None


@dataclass(frozen=True)
class HealthChange:
    """What changed between two evaluations: the incidents that began and ended."""

    database: str
    health: Health
    raised: list[HealthReason]
    cleared: list[HealthReason]

    @property
    def changed(self) -> bool:
        return bool(self.raised or self.cleared)


def evaluate_health(
    database: DatabaseRecord,
    backups: list[BackupRecord],
    pitr: PitrHealth | None,
    now: datetime,
    *,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    lag_limit: timedelta = DEFAULT_LAG_LIMIT,
    restores: list[RestoreRecord] | None = None,
) -> list[HealthReason]:
    """The database's problems now, most severe first. `backups` and `restores` (its
    recent ones) are in any order; its drills are read from its record."""
    reasons: list[HealthReason] = []
    failed = _failing_since(backups)
    if failed is not None:
        first_failure, last_failure = failed
        reasons.append(
            HealthReason(
                code="backup_failed",
                severity="failing",
                message=(
                    f"The last backup failed: {_one_line(last_failure.error)}. "
                    "Check that the database is reachable with its registered URL, "
                    "then trigger a manual backup."
                ),
                since=first_failure.finished_at or first_failure.created_at,
            )
        )
    stale = _stale_since(database, backups, now, stale_after)
    if stale is not None:
        reasons.append(stale)
    if pitr is not None and pitr.broken_reason is not None:
        reasons.append(
            HealthReason(
                code="pitr_broken",
                severity="failing",
                message=(
                    f"Continuous backups are broken: {_one_line(pitr.broken_reason)}. "
                    "Recovery to a point in time is not possible after the break until a "
                    "new base backup is stored."
                ),
                since=pitr.broken_since or now,
            )
        )
    elif pitr is not None and pitr.lag is not None and pitr.lag > lag_limit:
        reasons.append(
            HealthReason(
                code="pitr_lagging",
                severity="warning",
                message=(
                    f"Continuous backups are {_duration(pitr.lag)} behind (the limit is "
                    f"{_duration(lag_limit)}): a restore would lose the latest changes. "
                    "Check that the WAL capture runs and reaches the server."
                ),
                since=now - pitr.lag + lag_limit,
            )
        )
    reasons += _verification_reasons(database, now)
    restore = _restore_failed(restores or [])
    if restore is not None:
        reasons.append(restore)
    return reasons


def _verification_reasons(database: DatabaseRecord, now: datetime) -> list[HealthReason]:
    """A failed drill, until one passes; drills overdue, while enabled."""
    reasons: list[HealthReason] = []
    state = database.verification_state
    if state is not None and state.last_status == "failed":
        reasons.append(
            HealthReason(
                code="verification_failed",
                severity="failing",
                message=(
                    f"The last restore drill ({state.last_id}) failed: a backup did not "
                    "restore cleanly. Read its checks and report, fix the cause, then run a "
                    "drill again."
                ),
                since=state.last_at or now,
            )
        )
    overdue = overdue_since(database.verification, state, database.created_at)
    if overdue is not None and now > overdue:
        every = database.verification.every_days
        reasons.append(
            HealthReason(
                code="verification_overdue",
                severity="warning",
                message=(
                    f"No restore drill has passed for more than {every + 1} days (drills run "
                    f"every {every} days): nothing proves the backups restore. Check the "
                    "drills' errors, or run one on demand."
                ),
                since=overdue,
            )
        )
    return reasons


def _restore_failed(restores: list[RestoreRecord]) -> HealthReason | None:
    """The newest finished restores failed (until a later one succeeds)."""
    finished = sorted((r for r in restores if r.status in ("done", "error")), key=lambda r: r.id)
    failures: list[RestoreRecord] = []
    for restore in reversed(finished):
        if restore.status == "done":
            break
        failures.append(restore)
    if not failures:
        return None
    first, last = failures[-1], failures[0]
    return HealthReason(
        code="restore_failed",
        severity="warning",
        message=(
            f"The last restore (into {last.target}) failed: {_one_line(last.error).rstrip('.')}. "
            + (
                "Its target may be partial: restore again once the cause is fixed."
                if last.target_may_be_partial
                else "The target was not changed: restore again once the cause is fixed."
            )
        ),
        since=first.finished_at or first.created_at,
    )


def health_of(reasons: list[HealthReason], previous: Health | None, now: datetime) -> Health:
    status: HealthStatus = "ok"
    if any(r.severity == "failing" for r in reasons):
        status = "failing"
    elif reasons:
        status = "warning"
    unchanged = previous is not None and previous.status == status
    since = previous.since if unchanged and previous is not None else now
    return Health(status=status, reasons=reasons, since=since)


def health_change(
    database: str, previous: Health | None, reasons: list[HealthReason], now: datetime
) -> HealthChange:
    """The new health, and the incidents that began or ended since `previous`. An
    incident keeps the `since` it began with while its message may change."""
    before = {r.code: r for r in (previous.reasons if previous else [])}
    kept = [
        r.model_copy(update={"since": before[r.code].since}) if r.code in before else r
        for r in reasons
    ]
    now_codes = {r.code for r in kept}
    return HealthChange(
        database=database,
        health=health_of(kept, previous, now),
        raised=[r for r in kept if r.code not in before],
        cleared=[r for code, r in before.items() if code not in now_codes],
    )


def _failing_since(backups: list[BackupRecord]) -> tuple[BackupRecord, BackupRecord] | None:
    """The first and the last of the failed backups that came after the newest done one."""
    finished = sorted(
        (b for b in backups if b.status in ("done", "error")), key=lambda b: b.id
    )  # ULIDs sort by creation
    failures: list[BackupRecord] = []
    for backup in reversed(finished):
        if backup.status == "done":
            break
        failures.append(backup)
    if not failures:
        return None
    return failures[-1], failures[0]


def _stale_since(
    database: DatabaseRecord, backups: list[BackupRecord], now: datetime, stale_after: timedelta
) -> HealthReason | None:
    if not database.schedule.enabled or database.removed_at is not None:
        return None
    done = [b for b in backups if b.status == "done"]
    newest = max((b.created_at for b in done), default=None)
    if newest is not None:
        if now - newest <= stale_after:
            return None
        return HealthReason(
            code="backups_stale",
            severity="failing",
            message=(
                f"No backup has succeeded for {_duration(now - newest)} (the schedule "
                f"allows {_duration(stale_after)}). Check the dispatcher and the backups' "
                "errors, then trigger a manual backup."
            ),
            since=newest + stale_after,
        )
    if now - database.created_at <= stale_after:
        return None
    return HealthReason(
        code="backups_stale",
        severity="failing",
        message=(
            f"No backup has ever succeeded, {_duration(now - database.created_at)} after "
            "registration. Trigger a manual backup and check its error."
        ),
        since=database.created_at + stale_after,
    )


def _one_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "no reason recorded").splitlines() if line.strip()]
    line = lines[-1] if lines else "no reason recorded"
    return line if len(line) <= 300 else line[:299] + "…"


def _duration(span: timedelta) -> str:
    """`3 days 4 h`, `5 h 12 min`, `13 min`, `40 s`: as a person says it."""
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days > 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


@dataclass(frozen=True)
class AlertMessage:
    """One message for a person: an email's subject and body, a chat message's text."""

    database: str
    kind: Literal["raised", "cleared"]
    status: HealthStatus
    subject: str
    text: str


def alert_messages(change: HealthChange, dashboard_url: str | None) -> list[AlertMessage]:
    """What to send for a change: one message for the incidents that began, one for
    those that ended. Nothing when nothing began or ended."""
    name, health = change.database, change.health
    link = f"Dashboard: {dashboard_url.rstrip('/')}/#/databases/{name}" if dashboard_url else ""
    messages: list[AlertMessage] = []
    if change.raised:
        words = "is failing" if health.status == "failing" else "needs attention"
        lines = [f"pgbackups: the database {name} {words}."]
        for reason in change.raised:
            lines += ["", f"Since {_when(reason.since)}: {reason.message}"]
        still = [r for r in health.reasons if r not in change.raised]
        if still:
            lines += ["", "Still open: " + "; ".join(_title(r.code) for r in still) + "."]
        lines += ["", link] if link else []
        messages.append(
            AlertMessage(
                name,
                "raised",
                health.status,
                f"[pgbackups] {name}: " + ", ".join(_title(r.code) for r in change.raised),
                "\n".join(lines),
            )
        )
    if change.cleared:
        lines = [
            f"pgbackups: the database {name} has recovered: "
            + "; ".join(f"{_title(r.code)} (since {_when(r.since)})" for r in change.cleared)
            + " is over."
        ]
        if health.status == "ok":
            lines.append("Its backups are healthy again.")
        else:
            lines.append("Still open: " + "; ".join(_title(r.code) for r in health.reasons) + ".")
        lines += ["", link] if link else []
        messages.append(
            AlertMessage(
                name,
                "cleared",
                health.status,
                f"[pgbackups] {name}: recovered from "
                + ", ".join(_title(r.code) for r in change.cleared),
                "\n".join(lines),
            )
        )
    return messages


TITLES: dict[str, str] = {
    "backup_failed": "backup failed",
    "backups_stale": "no recent backup",
    "pitr_broken": "continuous backups broken",
    "pitr_lagging": "continuous backups lagging",
    "restore_failed": "restore failed",
    "verification_failed": "restore drill failed",
    "verification_overdue": "restore drill overdue",
}


def _title(code: str) -> str:
    return TITLES[code]


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
