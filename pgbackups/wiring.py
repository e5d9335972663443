"""The domain's collaborators, built once per process and passed into domain code.

Handlers build `Services.from_settings(...)` at module scope (cold start); tests
build it on moto and may swap the clock or the process launcher.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config

from pgbackups.adapters.archives import ArchiveStore
from pgbackups.adapters.catalog import Catalog
from pgbackups.adapters.events import BackupEvents
from pgbackups.adapters.secrets import ConnectionSecrets
from pgbackups.domain.models import utcnow
from pgbackups.postgres.dump import Launcher, launch
from pgbackups.postgres.pgtools import PgTools
from pgbackups.settings import Settings

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"})


class BackupInvoker:
    """Starts the backup function asynchronously (InvocationType Event)."""

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self._lambda = lambda_client
        self._function = function_name

    def invoke(self, database: str, backup_id: str) -> None:
        self._lambda.invoke(
            FunctionName=self._function,
            InvocationType="Event",
            Payload=json.dumps({"database": database, "backup_id": backup_id}).encode(),
        )


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    archives: ArchiveStore
    secrets: ConnectionSecrets
    events: BackupEvents
    invoker: BackupInvoker
    tools: PgTools
    clock: Callable[[], datetime] = field(default=utcnow)
    launcher: Launcher = field(default=launch)

    @classmethod
    def from_settings(cls, settings: Settings, session: boto3.Session | None = None) -> Services:
        session = session or boto3.Session()

        def client(name: str, config: Config = _RETRIES) -> Any:
            return session.client(name, config=config)

        s3 = client("s3", _RETRIES.merge(Config(signature_version="s3v4")))
        return cls(
            settings=settings,
            catalog=Catalog(client("dynamodb"), settings.table_name),
            archives=ArchiveStore(s3, settings.bucket_name),
            secrets=ConnectionSecrets(client("secretsmanager"), settings.secret_prefix),
            events=BackupEvents(client("events"), settings.event_bus_name),
            invoker=BackupInvoker(client("lambda"), settings.backup_function_name),
            tools=PgTools(settings.pgtools_dir),
        )
