"""Base backups: pg_basebackup's tar, compressed on the client, streamed to S3.

`pg_basebackup -D - -Ft -X none -c fast` writes one tar (the data directory and
its backup_manifest) to stdout; the WAL it needs comes from the archive the
capture keeps, so `-X none`. The compression happens in pg_basebackup
(`client-gzip`), which is also what the restore reads back with the standard
library. The stream goes through the same `stream_dump_to_s3` as pg_dump's:
hashed, checked by its first bytes, the multipart upload aborted on failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pgbackups.postgres.dump import StoredArchive
from pgbackups.postgres.dump import stream_dump_to_s3 as stream_to_s3
from pgbackups.postgres.pgtools import Launcher, PgTools, launch
from pgbackups.postgres.urls import registered_connection

if TYPE_CHECKING:
    from pgbackups.ports import Archives

GZIP_MAGIC = b"\x1f\x8b"
NOT_GZIP = "pg_basebackup's output is not a gzip-compressed tar"
COMPRESSION = "client-gzip:1"


def basebackup_command(tools: PgTools, url: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of pg_basebackup for `url`; the password goes in the environment."""
    target = registered_connection(url)  # the password goes in the environment only
    argv: Sequence[str] = [
        tools.program("pg_basebackup"),
        f"--dbname={target.conninfo}",
        "--pgdata=-",
        "--format=tar",
        "--wal-method=none",
        "--checkpoint=fast",
        f"--compress={COMPRESSION}",
        "--no-sync",
    ]
    return list(argv), tools.environment(target.password)


def stream_basebackup_to_s3(
    archives: Archives,
    key: str,
    tools: PgTools,
    url: str,
    *,
    seconds_left: float,
    launcher: Launcher = launch,
) -> StoredArchive:
    argv, env = basebackup_command(tools, url)
    return stream_to_s3(
        archives,
        key,
        argv,
        env,
        seconds_left=seconds_left,
        launcher=launcher,
        magic=GZIP_MAGIC,
        not_magic=NOT_GZIP,
        program="pg_basebackup",
    )
