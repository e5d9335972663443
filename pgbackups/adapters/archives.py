"""Backup archives in S3: streamed uploads, presigned downloads, deletions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, BinaryIO

from boto3.s3.transfer import TransferConfig

from pgbackups.domain.models import BackupRecord, utcnow

DEFAULT_URL_LIFETIME = timedelta(minutes=5)
MAX_URL_LIFETIME = timedelta(hours=1)

MIB = 1024 * 1024
# S3's limits: 10,000 parts per upload, 5 TiB per object, 5 MiB per part but the last.
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * 1024**4
# Parts of 8 MiB, 4 in flight (`make bench`): enough for archives up to 78 GiB.
MIN_PART_SIZE = 8 * MIB
# The part size that lets 10,000 parts reach 5 TiB (525 MiB): no archive needs more.
MAX_PART_SIZE = -(-MAX_OBJECT_SIZE // MAX_PARTS // MIB) * MIB
# The expected size is an estimate (the database grows, a dump without compression
# can outgrow pg_database_size with bytea in hex): parts are sized for twice as much.
SIZE_MARGIN = 2.0
# s3transfer holds at most max_in_memory_upload_chunks parts queued or in flight,
# plus the one being read and the one being handed over (max_io_queue bounds
# downloads only): memory_bound(). Small parts: 6 of them, 4 uploading. Large
# parts: as many as fit in UPLOAD_BUFFER_BUDGET, at least 2, so the largest part
# size (525 MiB) holds at most 4 x 525 MiB = 2,100 MiB; the Fargate task's memory
# parameter leaves room for it. tests/unit/test_archives.py measures it on a
# simulated 200 GiB stream.
IN_MEMORY_PARTS = 6
MIN_IN_MEMORY_PARTS = 2
UPLOAD_BUFFER_BUDGET = IN_MEMORY_PARTS * MIN_PART_SIZE
MAX_CONCURRENCY = 4


def part_size_for(expected_size: int | None) -> int:
    """The multipart part size for an archive of about `expected_size` bytes.

    Whole MiB, between 8 MiB and 525 MiB, so that `SIZE_MARGIN` times the
    expected size fits in 10,000 parts (and 5 TiB always fits at the largest).
    """
    if not expected_size or expected_size <= 0:
        return MIN_PART_SIZE
    needed = expected_size * SIZE_MARGIN / MAX_PARTS
    whole_mib = -(-int(needed) // MIB) * MIB
    return max(MIN_PART_SIZE, min(MAX_PART_SIZE, whole_mib))


def in_memory_parts(part_size: int) -> int:
    return max(MIN_IN_MEMORY_PARTS, min(IN_MEMORY_PARTS, UPLOAD_BUFFER_BUDGET // part_size))


def memory_bound(part_size: int) -> int:
    """The most bytes of archive an upload holds at once with this part size."""
    return (in_memory_parts(part_size) + 2) * part_size


def stream_transfer(part_size: int = MIN_PART_SIZE) -> TransferConfig:
    parts = in_memory_parts(part_size)
    config = TransferConfig(
        multipart_threshold=part_size,
        multipart_chunksize=part_size,
        max_concurrency=min(MAX_CONCURRENCY, parts),
        use_threads=True,
    )
    # Not an argument of boto3's TransferConfig, but s3transfer reads it (default 10).
    config.max_in_memory_upload_chunks = parts
    return config


# The settings of an archive of unknown size (`make bench`: 115 MiB peak RSS for the
# whole backup process with them).
STREAM_TRANSFER = stream_transfer()


class ArchiveStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    @property
    def bucket(self) -> str:
        return self._bucket

    def upload_stream(self, key: str, stream: BinaryIO, expected_size: int | None = None) -> None:
        """Upload a non-seekable stream with a multipart upload and bounded memory.

        The part size grows with `expected_size` (see `part_size_for`). If reading
        the stream raises, s3transfer aborts the multipart upload and no object is
        created.
        """
        config = (
            STREAM_TRANSFER
            if expected_size is None
            else stream_transfer(part_size_for(expected_size))
        )
        self._s3.upload_fileobj(
            stream,
            self._bucket,
            key,
            ExtraArgs={"ContentType": "application/octet-stream"},
            Config=config,
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

    def put_bytes(self, key: str, data: bytes, metadata: dict[str, str], kind: str) -> None:
        """A small object in one request (a compressed WAL segment), tagged with its kind
        (the bucket's lifecycle expires overwritten WAL sooner than backups)."""
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=data,
            Metadata=metadata,
            Tagging=f"pgbackups-kind={kind}",
            ContentType="application/octet-stream",
        )

    def keys(self, prefix: str) -> list[str]:
        """Every key under `prefix`, in key order."""
        found: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=prefix
        ):
            found += [item["Key"] for item in page.get("Contents", [])]
        return found

    def object_url(self, key: str, lifetime: timedelta) -> str:
        """A presigned GET of any archive object (what a point-in-time restore downloads)."""
        return str(
            self._s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": key},
                ExpiresIn=int(min(lifetime, MAX_URL_LIFETIME).total_seconds()),
            )
        )

    def metadata(self, key: str) -> dict[str, str]:
        return dict(self._s3.head_object(Bucket=self._bucket, Key=key)["Metadata"])

    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key succeeds."""
        self._s3.delete_object(Bucket=self._bucket, Key=key)

    def uploaded_so_far(self, key: str) -> int | None:
        """Bytes of the parts uploaded so far to `key`'s multipart upload in progress;
        None when there is none (not started, or already complete or aborted)."""
        uploads = self._s3.list_multipart_uploads(Bucket=self._bucket, Prefix=key)
        upload = next((u for u in uploads.get("Uploads", []) if u["Key"] == key), None)
        if upload is None:
            return None
        total = 0
        try:
            for page in self._s3.get_paginator("list_parts").paginate(
                Bucket=self._bucket, Key=key, UploadId=upload["UploadId"]
            ):
                total += sum(part["Size"] for part in page.get("Parts", []))
        except self._s3.exceptions.NoSuchUpload:
            return None  # completed or aborted since it was listed
        return total
