"""pg_dump: its command line, the flags that match a restore, and its archive streamed
to S3 (through `pgbackups.postgres.streaming`, checked by the PGDMP header).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pgbackups.postgres.pgtools import Launcher, PgTools, launch
from pgbackups.postgres.streaming import ArchiveUploads, StoredArchive, stream_to_s3
from pgbackups.postgres.urls import Connection

ARCHIVE_MAGIC = b"PGDMP"
NOT_AN_ARCHIVE = "pg_dump's output is not a custom-format archive (no PGDMP header)"

# The dump command of the hosted backup add-ons users come from (docs/architecture.md).
DUMP_FLAGS: tuple[str, ...] = (
    "--clean",
    "--if-exists",
    "--format=custom",
    "--no-owner",
    "--no-privileges",
    "--no-comments",
    "--exclude-schema=information_schema",
    "--exclude-schema=^pg_*",
)
# The restore flags that match the dump's (no owners, no privileges), for backups-restore.
RESTORE_FLAGS: tuple[str, ...] = (
    "--clean",
    "--if-exists",
    "--no-owner",
    "--no-privileges",
    "--no-comments",
)


def dump_command(
    tools: PgTools, target: Connection, compression: str
) -> tuple[list[str], dict[str, str]]:
    """argv and environment of pg_dump; the password goes in the environment only."""
    argv = [
        tools.program("pg_dump"),
        *DUMP_FLAGS,
        f"--compress={compression}",
        f"--dbname={target.conninfo}",
    ]
    return argv, tools.environment(target.password)


def stream_dump_to_s3(
    archives: ArchiveUploads,
    key: str,
    argv: Sequence[str],
    env: dict[str, str],
    *,
    seconds_left: float,
    launcher: Launcher = launch,
    expected_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> StoredArchive:
    """Run pg_dump (`dump_command`) and upload its custom-format archive to `key`; stop it
    after `seconds_left`. DumpFailed when pg_dump fails or its output is not an archive;
    no object is left then (`pgbackups.postgres.streaming.stream_to_s3`)."""
    return stream_to_s3(
        archives,
        key,
        argv,
        env,
        seconds_left=seconds_left,
        launcher=launcher,
        expected_size=expected_size,
        magic=ARCHIVE_MAGIC,
        not_magic=NOT_AN_ARCHIVE,
        program="pg_dump",
        progress=progress,
    )
