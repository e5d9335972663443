"""Configuration: template → environment → one typed object, read once at cold start.

Only names live in the environment (table, bucket, secret prefix, …); secrets are
read from Secrets Manager.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pgbackups.domain.lock import DEFAULT_LOCK_DAYS, NO_LOCK, BackupLock
from pgbackups.domain.models import DEFAULT_COMPRESSION, check_compression
from pgbackups.postgres.servers import server_dirs


class SettingsError(RuntimeError):
    """A required environment variable is missing or invalid."""


@dataclass(frozen=True)
class Settings:
    table_name: str
    bucket_name: str
    secret_prefix: str
    event_bus_name: str = "default"
    backup_function_name: str = ""
    capture_function_name: str = ""
    pgtools_dir: Path = Path("/opt")
    # Server binaries per major (pgbackups.postgres.servers): the Fargate task's only.
    server_dirs: tuple[Path, ...] = ()
    # The server layers' ARNs by major (template.yaml's PgServer<major>Layer): what a
    # Fargate run that starts PostgreSQL gets on top of the backup function's layers.
    server_layers: dict[int, str] = field(default_factory=dict)
    backup_timeout_seconds: int = 900
    default_compression: str = DEFAULT_COMPRESSION
    # The Fargate runner (template.yaml's BackupTaskDefinition); unavailable without subnets.
    task_cluster: str = ""
    task_definition: str = ""
    task_container: str = "backup"
    task_subnets: tuple[str, ...] = ()
    task_security_groups: tuple[str, ...] = ()
    task_public_ip: bool = False
    task_timeout_seconds: int = 6 * 3600
    fargate_size_threshold_bytes: int = 10 * 1000**3
    # Object Lock of everything the stack writes: the template's parameters BackupLock
    # (governance by default) and BackupLockDays; none where the environment names none.
    backup_lock: BackupLock = NO_LOCK
    # Alerts: the SNS topic (email), the secret holding the chat webhook's URL (its ARN
    # only: the URL is a secret), the dashboard a message links to. Empty: not set up.
    alert_topic_arn: str = ""
    alert_webhook_secret_arn: str = ""
    dashboard_url: str = ""

    @property
    def fargate_available(self) -> bool:
        return bool(self.task_cluster and self.task_definition and self.task_subnets)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        missing = [
            name for name in ("TABLE_NAME", "BUCKET_NAME", "SECRET_PREFIX") if not env.get(name)
        ]
        if missing:
            raise SettingsError(f"missing environment variables: {', '.join(missing)}")
        try:
            timeout = int(env.get("BACKUP_TIMEOUT_SECONDS", "900"))
            task_timeout = int(env.get("BACKUP_TASK_TIMEOUT_SECONDS", str(6 * 3600)))
            threshold = int(env.get("FARGATE_SIZE_THRESHOLD_BYTES", str(10 * 1000**3)))
            compression = check_compression(env.get("DEFAULT_COMPRESSION", DEFAULT_COMPRESSION))
            layers = _server_layers(env.get("SERVER_LAYERS", ""))
            lock = BackupLock(
                env.get("BACKUP_LOCK", "off"),  # type: ignore[arg-type]  # checked
                int(env.get("BACKUP_LOCK_DAYS", str(DEFAULT_LOCK_DAYS))),
            )
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            table_name=env["TABLE_NAME"],
            bucket_name=env["BUCKET_NAME"],
            secret_prefix=env["SECRET_PREFIX"].rstrip("/"),
            event_bus_name=env.get("EVENT_BUS_NAME", "default"),
            backup_function_name=env.get("BACKUP_FUNCTION_NAME", ""),
            capture_function_name=env.get("CAPTURE_FUNCTION_NAME", ""),
            pgtools_dir=Path(env.get("PGTOOLS_DIR", "/opt")),
            server_dirs=server_dirs(env),
            server_layers=layers,
            backup_timeout_seconds=timeout,
            default_compression=compression,
            task_cluster=env.get("BACKUP_TASK_CLUSTER", ""),
            task_definition=env.get("BACKUP_TASK_DEFINITION", ""),
            task_container=env.get("BACKUP_TASK_CONTAINER", "backup"),
            task_subnets=_names(env.get("BACKUP_TASK_SUBNETS", "")),
            task_security_groups=_names(env.get("BACKUP_TASK_SECURITY_GROUPS", "")),
            task_public_ip=env.get("BACKUP_TASK_PUBLIC_IP", "DISABLED") == "ENABLED",
            task_timeout_seconds=task_timeout,
            fargate_size_threshold_bytes=threshold,
            backup_lock=lock,
            alert_topic_arn=env.get("ALERT_TOPIC_ARN", ""),
            alert_webhook_secret_arn=env.get("ALERT_WEBHOOK_SECRET_ARN", ""),
            dashboard_url=env.get("DASHBOARD_ADDRESS", ""),
        )


def _names(listed: str) -> tuple[str, ...]:
    """A CloudFormation CommaDelimitedList joined with commas (empty entries dropped)."""
    return tuple(name.strip() for name in listed.split(",") if name.strip())


def _server_layers(listed: str) -> dict[int, str]:
    """`15=<layer version ARN>,16=<ARN>,…` (template.yaml's SERVER_LAYERS) by major."""
    layers: dict[int, str] = {}
    for entry in _names(listed):
        major, _, arn = entry.partition("=")
        if not major.strip().isdigit() or not arn.strip():
            raise ValueError(f"SERVER_LAYERS: {entry!r} is not <major>=<layer version ARN>")
        layers[int(major)] = arn.strip()
    return layers
