"""`backups-restore`: the bundled pg_restore 18 into a target database.

The password is taken out of the URL and passed through PGPASSWORD, so it is
never on a command line another user could read in `ps`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pgbackups
from pgbackups.postgres.dump import ARCHIVE_MAGIC, RESTORE_FLAGS
from pgbackups.postgres.pgtools import PgTools
from pgbackups.postgres.urls import redact, split_password

PGTOOLS_ENV = "PGBACKUPS_PGTOOLS_DIR"
BUILT_LAYER = Path(pgbackups.__file__).resolve().parents[1] / ".aws-sam" / "build" / "PgToolsLayer"


class RestoreFailed(Exception):
    pass


@dataclass(frozen=True)
class Target:
    """Where a restore goes, as the confirmation shows it (password masked)."""

    url: str
    host: str
    port: int | None
    database: str

    @classmethod
    def parse(cls, url: str) -> Target:
        """ValueError with the reason when `url` is not a PostgreSQL URL naming a database."""
        if not url.startswith(("postgres://", "postgresql://")):
            raise ValueError("it must start with postgres:// or postgresql://")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise ValueError(f"it is not a valid URL ({error})") from None
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ValueError("it names no database (postgres://user:password@host:5432/DATABASE)")
        return cls(url=url, host=parts.hostname or "localhost", port=port, database=database)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host

    @property
    def redacted(self) -> str:
        return redact(self.url) or ""


def find_pgtools(environ: Mapping[str, str] | None = None) -> PgTools:
    """The built pgtools layer: PGBACKUPS_PGTOOLS_DIR, else <repo>/.aws-sam/build/PgToolsLayer."""
    env = os.environ if environ is None else environ
    root = Path(env[PGTOOLS_ENV]) if env.get(PGTOOLS_ENV) else BUILT_LAYER
    tools = PgTools(root)
    if not Path(tools.program("pg_restore")).is_file():
        where = f"{PGTOOLS_ENV}={root}" if env.get(PGTOOLS_ENV) else str(root)
        raise RestoreFailed(
            f"pg_restore 18 was not found in {where}/bin. Build it with `make build`, "
            f"or set {PGTOOLS_ENV} to a directory holding bin/pg_restore and lib/."
        )
    return tools


def check_archive_file(path: Path) -> None:
    """RestoreFailed unless `path` starts like a pg_dump custom-format archive."""
    with path.open("rb") as file:
        header = file.read(len(ARCHIVE_MAGIC))
    if header != ARCHIVE_MAGIC:
        raise RestoreFailed(f"{path} is not a pg_dump custom-format archive (no PGDMP header)")


def restore_command(
    tools: PgTools, archive: Path, target: Target
) -> tuple[list[str], dict[str, str]]:
    """argv (no password in it) and environment (PGPASSWORD) of pg_restore."""
    safe_url, password = split_password(target.url)
    argv = [tools.program("pg_restore"), *RESTORE_FLAGS, f"--dbname={safe_url}", str(archive)]
    return argv, tools.environment(password)


def run_pg_restore(tools: PgTools, archive: Path, target: Target) -> None:
    """RestoreFailed with pg_restore's own error lines when it fails."""
    argv, env = restore_command(tools, archive, target)
    result = subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        errors = _without_password(result.stderr.strip(), target.url)
        raise RestoreFailed(
            f"pg_restore failed (exit code {result.returncode})"
            + (f":\n{errors}" if errors else "")
        )


def _without_password(text: str, url: str) -> str:
    _, password = split_password(url)
    return text.replace(password, "***") if password else text
