"""Backup archives in S3: streamed uploads, presigned downloads, deletions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, BinaryIO

from boto3.s3.transfer import TransferConfig

from pgbackups.domain.models import BackupRecord, utcnow

DEFAULT_URL_LIFETIME = timedelta(minutes=5)
MAX_URL_LIFETIME = timedelta(hours=1)

# Parts of 8 MiB, 4 in flight. An upload from a stream holds at most
# max_in_memory_upload_chunks + 1 parts (max_io_queue bounds downloads only), so
# memory stays under 8 MiB x 7 whatever the archive's size (`make bench`: 115 MiB
# peak for the whole process); 10,000 parts allow archives up to 78 GiB, more
# than one Lambda invocation can dump.
STREAM_TRANSFER = TransferConfig(
    multipart_threshold=8 * 1024 * 1024,
    multipart_chunksize=8 * 1024 * 1024,
    max_concurrency=4,
    use_threads=True,
)
# Not an argument of boto3's TransferConfig, but s3transfer reads it (default 10).
STREAM_TRANSFER.max_in_memory_upload_chunks = 6


class ArchiveStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    @property
    def bucket(self) -> str:
        return self._bucket

    def upload_stream(self, key: str, stream: BinaryIO) -> None:
        """Upload a non-seekable stream with a multipart upload and bounded memory.

        If reading the stream raises, s3transfer aborts the multipart upload and
        no object is created.
        """
        self._s3.upload_fileobj(
            stream,
            self._bucket,
            key,
            ExtraArgs={"ContentType": "application/octet-stream"},
            Config=STREAM_TRANSFER,
        )

    def download_url(
        self, record: BackupRecord, lifetime: timedelta = DEFAULT_URL_LIFETIME
    ) -> tuple[str, datetime]:
        """A presigned GET that saves the archive as `<name>.pgsql`, and when it expires."""
        lifetime = min(lifetime, MAX_URL_LIFETIME)
        url = self._s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": record.object_key,
                "ResponseContentDisposition": f'attachment; filename="{record.filename}"',
                "ResponseContentType": "application/octet-stream",
            },
            ExpiresIn=int(lifetime.total_seconds()),
        )
        return url, utcnow() + lifetime

    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key succeeds."""
        self._s3.delete_object(Bucket=self._bucket, Key=key)
