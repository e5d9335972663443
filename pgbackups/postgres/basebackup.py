"""Base backups: pg_basebackup's tar, compressed on the client, streamed to S3.

`pg_basebackup -D - -Ft -X none -c fast` writes one tar (the data directory and
its backup_manifest) to stdout; the WAL it needs comes from the archive the
capture keeps, so `-X none`. The compression happens in pg_basebackup
(`client-gzip`), which is also what the restore reads back with the standard
library. The stream goes through the same `stream_to_s3` as pg_dump's:
hashed, checked by its first bytes, the multipart upload aborted on failure.

The backup's exact WAL range (its backup_manifest's WAL-Ranges: where replay
starts, and the end it must reach) is read from the stream as it passes. The
manifest is the tar's last member, so the output is decompressed on the fly and
only its tail kept (pg_basebackup says nothing of the range without `-X`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from pgbackups.postgres.lsn import parse_lsn
from pgbackups.postgres.pgtools import Launcher, PgTools, launch
from pgbackups.postgres.streaming import ArchiveUploads, stream_to_s3
from pgbackups.postgres.urls import registered_connection

GZIP_MAGIC = b"\x1f\x8b"
NOT_GZIP = "pg_basebackup's output is not a gzip-compressed tar"
COMPRESSION = "client-gzip:1"
# The manifest's end (WAL-Ranges, its checksum) and the tar's trailer fit in this.
MANIFEST_TAIL_BYTES = 256 * 1024
WAL_RANGES = re.compile(rb'"WAL-Ranges"\s*:\s*\[(.*?)\]', re.DOTALL)
START_LSN = re.compile(rb'"Start-LSN"\s*:\s*"([0-9A-F]{1,8}/[0-9A-F]{1,8})"')
END_LSN = re.compile(rb'"End-LSN"\s*:\s*"([0-9A-F]{1,8}/[0-9A-F]{1,8})"')


@dataclass(frozen=True)
class StoredBaseBackup:
    size: int
    sha256: str
    wal_range: tuple[int, int] | None  # (start, end) LSN; None if no manifest was seen


class ManifestTail:
    """pg_basebackup's gzip output decompressed as it passes, of which only the last
    bytes are kept: there, the backup_manifest's WAL-Ranges. Memory stays bounded."""

    def __init__(self) -> None:
        self._gzip = zlib.decompressobj(wbits=31)
        self._tail = b""

    def feed(self, chunk: memoryview) -> None:
        data = self._gzip.decompress(chunk, MANIFEST_TAIL_BYTES)
        while True:
            self._tail = (self._tail + data)[-MANIFEST_TAIL_BYTES:]
            if not self._gzip.unconsumed_tail:
                return
            data = self._gzip.decompress(self._gzip.unconsumed_tail, MANIFEST_TAIL_BYTES)

    def wal_range(self) -> tuple[int, int] | None:
        """The first range's start and the last one's end (a range per timeline)."""
        ranges = list(WAL_RANGES.finditer(self._tail))
        if not ranges:
            return None
        starts = START_LSN.findall(ranges[-1][1])
        ends = END_LSN.findall(ranges[-1][1])
        if not starts or not ends:
            return None
        return parse_lsn(starts[0].decode()), parse_lsn(ends[-1].decode())


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
    archives: ArchiveUploads,
    key: str,
    tools: PgTools,
    url: str,
    *,
    seconds_left: float,
    launcher: Launcher = launch,
) -> StoredBaseBackup:
    argv, env = basebackup_command(tools, url)
    manifest = ManifestTail()
    stored = stream_to_s3(
        archives,
        key,
        argv,
        env,
        seconds_left=seconds_left,
        launcher=launcher,
        magic=GZIP_MAGIC,
        not_magic=NOT_GZIP,
        program="pg_basebackup",
        observe=manifest.feed,
    )
    return StoredBaseBackup(stored.size, stored.sha256, manifest.wal_range())
