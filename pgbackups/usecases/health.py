"""Each database's health, kept up to date by the dispatcher and by every finished
backup, and the alerts that go out when an incident begins or ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import DatabaseNotFound
from pgbackups.domain.health import (
    Health,
    HealthChange,
    PitrHealth,
    alert_messages,
    evaluate_health,
    health_change,
)
from pgbackups.domain.models import BackupRecord, DatabaseRecord
from pgbackups.domain.restores import RestoreRecord
from pgbackups.services import Services

logger = Logger(child=True)

# The project's events (source `pgbackups`) after which a database's health may have
# changed: the dispatcher refreshes it at once (template.yaml's HealthEvents rule).
HEALTH_EVENTS = frozenset(
    {
        "Backup Failed",
        "Backup Succeeded",
        "PITR Broken",
        "Restore Failed",
        "Restore Succeeded",
        "Verification Failed",
        "Verification Passed",
    }
)


@dataclass(frozen=True)
class HealthCounts:
    """What the dispatcher publishes each run: the dead man's switch's metric."""

    failing: int = 0
    stale: int = 0
    lagging: int = 0


def refresh_health(
    services: Services, database: DatabaseRecord, backups: list[BackupRecord], now: datetime
) -> HealthChange | None:
    """Evaluate the database's health, record it and send what began or ended.

    The record is claimed with a conditional write on the health read before, so the
    dispatcher and a backup finishing at the same moment send one alert, not two; a
    delivery that fails puts the previous health back, so the next run sends it again
    (the change is returned all the same: the metrics count what is true). None when
    another writer got there first (it sends), or the database is removed."""
    if database.removed_at is not None:
        return None
    reasons = evaluate_health(
        database,
        backups,
        pitr_health(services, database.name, now),
        now,
        stale_after=database.alerting.stale_after,
        lag_limit=database.alerting.lag_limit,
        restores=recent_restores(services, database.name),
    )
    change = health_change(database.name, database.health, reasons, now)
    if change.health == database.health or (database.health is None and not reasons):
        return change  # nothing to record: a database never unhealthy stays unrecorded
    if not services.catalog.record_health(database.name, change.health, database.health):
        return None
    messages = alert_messages(change, services.settings.dashboard_url)
    try:
        for message in messages:
            services.alerts.send(message)
    except Exception as error:  # the channels' errors never carry the webhook's URL
        logger.error(
            "an alert could not be delivered: it is sent again at the next evaluation",
            extra={"database": database.name, "reason": str(error)},
        )
        services.catalog.record_health(database.name, database.health or Health(), change.health)
        return change
    for message in messages:
        logger.info(
            "alert sent",
            extra={"database": database.name, "alert": message.kind, "subject": message.subject},
        )
    return change


# Enough to see whether the newest restores failed since the last one that succeeded.
RECENT_RESTORES = 10


def recent_restores(services: Services, database: str) -> list[RestoreRecord]:
    restores, _ = services.restores.list_restores(database, limit=RECENT_RESTORES)
    return restores


def refresh_database_health(services: Services, name: str) -> HealthChange | None:
    """One database's health now, as soon as one of its backups finished or its
    continuous backups broke (the events the dispatcher also listens to)."""
    try:
        database = services.catalog.get_database(name)
    except DatabaseNotFound:
        return None
    return refresh_health(services, database, services.catalog.all_backups(name), services.clock())


def pitr_health(services: Services, database: str, now: datetime) -> PitrHealth | None:
    """Continuous backups as the health rules read them; None when they are off."""
    state = services.pitr.get_state(database)
    if state is None or not state.enabled:
        return None
    chains = services.pitr.chains(database)
    current = next((c for c in chains if c.id == state.chain_id), None)
    if state.status == "broken":
        broken = max((c.broken_at for c in chains if c.broken_at), default=None)
        return PitrHealth(state.broken_reason or "no reason recorded", broken, None)
    archived = current.last_archived_at if current else None
    return PitrHealth(None, None, now - archived if archived else None)


def counts(healths: list[Health]) -> HealthCounts:
    codes = [[r.code for r in h.reasons] for h in healths]
    return HealthCounts(
        failing=sum(1 for h in healths if h.status == "failing"),
        stale=sum(1 for c in codes if "backups_stale" in c),
        lagging=sum(1 for c in codes if "pitr_lagging" in c),
    )
