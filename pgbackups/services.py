"""The bundle of collaborators a handler hands the use cases: the ports, the settings,
the PostgreSQL tools, the clock (built by `pgbackups.wiring.build_services`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pgbackups.domain.models import utcnow
from pgbackups.ports import (
    Alerts,
    Archives,
    AuditLog,
    BackupRunner,
    CaptureStarter,
    Catalog,
    Events,
    PitrCatalog,
    Restores,
    Secrets,
    TokenStore,
    Verifications,
)
from pgbackups.postgres.pgtools import Launcher, PgTools, launch
from pgbackups.settings import Settings


@dataclass
class Services:
    """The use cases' collaborators, built once per process (`pgbackups.wiring.build_services`)."""

    settings: Settings
    catalog: Catalog
    archives: Archives
    secrets: Secrets
    events: Events
    runner: BackupRunner  # the backup function: the default
    tools: PgTools
    pitr: PitrCatalog
    captures: CaptureStarter
    tokens: TokenStore
    audit: AuditLog
    alerts: Alerts
    restores: Restores
    verifications: Verifications
    clock: Callable[[], datetime] = field(default=utcnow)
    launcher: Launcher = field(default=launch)
    # The container runner for backups that outgrow Lambda; None where the
    # deployment has none (no subnets for its tasks).
    fargate: BackupRunner | None = None
