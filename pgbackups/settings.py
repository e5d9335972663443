"""Configuration: template → environment → one typed object, read once at cold start.

Only names live in the environment (table, bucket, secret prefix, …); secrets are
read from Secrets Manager.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pgbackups.domain.models import DEFAULT_COMPRESSION, check_compression


class SettingsError(RuntimeError):
    """A required environment variable is missing or invalid."""


@dataclass(frozen=True)
class Settings:
    table_name: str
    bucket_name: str
    secret_prefix: str
    event_bus_name: str = "default"
    backup_function_name: str = ""
    pgtools_dir: Path = Path("/opt")
    backup_timeout_seconds: int = 900
    default_compression: str = DEFAULT_COMPRESSION

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
            compression = check_compression(env.get("DEFAULT_COMPRESSION", DEFAULT_COMPRESSION))
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            table_name=env["TABLE_NAME"],
            bucket_name=env["BUCKET_NAME"],
            secret_prefix=env["SECRET_PREFIX"].rstrip("/"),
            event_bus_name=env.get("EVENT_BUS_NAME", "default"),
            backup_function_name=env.get("BACKUP_FUNCTION_NAME", ""),
            pgtools_dir=Path(env.get("PGTOOLS_DIR", "/opt")),
            backup_timeout_seconds=timeout,
            default_compression=compression,
        )
