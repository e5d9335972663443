"""A done backup's archive, written as it downloads from S3 into a process's standard
input (pg_restore's), its digest checked: what a restore and a drill both read."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import IO

from pgbackups.domain.models import BackupRecord
from pgbackups.postgres.restore import RestoreFailed
from pgbackups.services import Services

# Bytes read from S3 at a time.
CHUNK = 1024 * 1024


def archive_feed(
    services: Services, backup: BackupRecord, deadline: float | None
) -> Callable[[IO[bytes]], None]:
    """Writes the backup's archive, as it downloads, into `sink`; raises when its digest
    is not the one recorded (the bucket is not trusted) or the runner's deadline comes
    (`deadline`, on the monotonic clock). Without a deadline (a first pass that only
    lists the archive) the digest is not checked."""

    def feed(sink: IO[bytes]) -> None:
        body = services.archives.open_stream(backup.object_key)
        digest = hashlib.sha256()
        try:
            while chunk := body.read(CHUNK):
                if deadline is not None and time.monotonic() > deadline:
                    raise RestoreFailed("timed out: the restore did not finish before its deadline")
                digest.update(chunk)
                sink.write(chunk)
        finally:
            body.close()
        if deadline is not None and backup.sha256 and digest.hexdigest() != backup.sha256:
            raise RestoreFailed(
                f"the archive of backup {backup.id} in storage does not match its recorded "
                "SHA-256: it was changed after the backup"
            )

    return feed
