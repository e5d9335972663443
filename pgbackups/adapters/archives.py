"""Backup archives in S3: streamed uploads, presigned downloads, deletions, Object Lock.

With a backup lock (`pgbackups.domain.lock.BackupLock`), every object is written with
its Object Lock mode and retain-until date, in the same request (PutObject, or
CreateMultipartUpload), and every such request carries a checksum as S3 requires: the
CRC32 of the object or of each part. The one exception is the partial WAL segment,
rewritten at every capture: locking each of its versions would keep thousands of them.

Deleting a key only adds a delete marker (the bucket is versioned; the lifecycle rules
expire noncurrent versions once their date has passed): no function can destroy a version.
"""

from __future__ import annotations

import base64
import contextlib
import queue
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from pgbackups.domain.lock import NO_LOCK, BackupLock
from pgbackups.domain.models import (
    DEFAULT_URL_LIFETIME,
    MAX_URL_LIFETIME,
    BackupRecord,
    utcnow,
)

if TYPE_CHECKING:
    from pgbackups.ports import Readable

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
# An upload reads the stream straight into a few part buffers and sends each from its
# buffer, so it holds exactly in_memory_parts() buffers: one filling, the others
# uploading. Small parts: 6 of them, 4 uploading at once. Large parts: as many as
# fit in UPLOAD_BUFFER_BUDGET, at least 3 (2 uploading), so the largest part size
# (525 MiB) holds 3 x 525 MiB = 1,575 MiB; the Fargate task's memory parameter
# leaves room for it.
# Each part also keeps about 2 KB (its ETag and checksum) until the upload completes:
# 20 MB at 10,000 parts. tests/unit/test_archives.py measures both on a simulated
# 200 GiB stream.
IN_MEMORY_PARTS = 6
MIN_IN_MEMORY_PARTS = 3
UPLOAD_BUFFER_BUDGET = IN_MEMORY_PARTS * MIN_PART_SIZE
MAX_CONCURRENCY = 4
# Each part (and a small archive's one object) carries its CRC32, computed here from
# the buffer it is sent from, which S3 checks on receipt.
PART_CHECKSUM = "CRC32"
CONTENT_TYPE = "application/octet-stream"
# Rewritten at every capture until the segment is complete: never locked.
UNLOCKED_SUFFIX = ".partial.gz"


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
    return in_memory_parts(part_size) * part_size


def crc32(data: bytearray) -> str:
    """S3's CRC32 of `data` (base64 of the big-endian value).

    Given with the request, so botocore sends the buffer as it is: computing it
    itself, over https, it would first copy the buffer into a stream of its own.
    """
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def read_into(stream: Readable, buffer: bytearray) -> int:
    """Fill `buffer` from `stream`; fewer bytes only at the end of the stream."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


class StreamUpload:
    """One multipart upload of a stream, its parts read and sent from reused buffers.

    A part's buffer goes back to the reader once S3 has it; the first failure (of a
    part, or of reading the stream) stops the reading, lets the parts in flight end,
    aborts the upload and propagates.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        part_size: int,
        progress: Callable[[int], None] | None = None,
        lock: dict[str, Any] | None = None,
    ) -> None:
        self._s3 = s3
        self._where = {"Bucket": bucket, "Key": key}
        self._lock = lock or {}
        self._part_size = part_size
        self._free: queue.Queue[bytearray] = queue.Queue()
        self._failure: BaseException | None = None
        self._failed = threading.Lock()
        self._progress = progress
        self._uploaded = 0
        self._counting = threading.Lock()

    def run(self, stream: Readable, first: bytearray) -> None:
        """Upload `first` (a full part already read) and the rest of `stream`."""
        self._where["UploadId"] = self._s3.create_multipart_upload(
            **self._where,
            ContentType=CONTENT_TYPE,
            # Declared, as S3 requires with lock parameters: every part then carries its CRC32.
            ChecksumAlgorithm=PART_CHECKSUM,
            **self._lock,
        )["UploadId"]
        try:
            parts = self._send_all(stream, first)
            self._s3.complete_multipart_upload(**self._where, MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):  # the failure to report is the first one
                self._s3.abort_multipart_upload(**self._where)
            raise

    def _send_all(self, stream: Readable, first: bytearray) -> list[dict[str, Any]]:
        buffers = in_memory_parts(self._part_size)
        for _ in range(buffers - 1):
            self._free.put(bytearray(self._part_size))
        sent: list[Future[dict[str, Any]]] = []
        with ThreadPoolExecutor(min(MAX_CONCURRENCY, buffers), "archive-upload") as pool:
            try:
                buffer, length = first, len(first)
                while length:
                    last = length < self._part_size
                    if last:
                        del buffer[length:]
                    sent.append(pool.submit(self._send, len(sent) + 1, buffer))
                    if last:
                        break
                    buffer = self._free.get()  # waits while every buffer is uploading
                    if self._failure is not None:
                        break
                    length = read_into(stream, buffer)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        if self._failure is not None:
            raise self._failure
        return [part.result() for part in sent]

    def _send(self, number: int, buffer: bytearray) -> dict[str, Any]:
        try:
            if self._failure is not None:
                raise CancelledError("an earlier part failed")
            checksum = crc32(buffer)
            sent = self._s3.upload_part(
                **self._where,
                PartNumber=number,
                Body=buffer,
                ChecksumAlgorithm=PART_CHECKSUM,
                ChecksumCRC32=checksum,
            )
            with self._counting:  # one report at a time, each total larger than the last
                self._uploaded += len(buffer)
                if self._progress is not None:
                    self._progress(self._uploaded)
        except BaseException as error:
            with self._failed:
                self._failure = self._failure or error
            raise
        finally:
            self._free.put(buffer)
        return {"PartNumber": number, "ETag": sent["ETag"], "ChecksumCRC32": checksum}


class ArchiveStore:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        lock: BackupLock = NO_LOCK,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._lock = lock
        self._clock = clock

    @property
    def bucket(self) -> str:
        return self._bucket

    def _lock_parameters(self, key: str) -> dict[str, Any]:
        """PutObject's (and CreateMultipartUpload's) Object Lock parameters for `key`."""
        until = self._lock.until(self._clock())
        if until is None or key.endswith(UNLOCKED_SUFFIX):
            return {}
        return {"ObjectLockMode": self._lock.mode.upper(), "ObjectLockRetainUntilDate": until}

    def extend_lock(self, key: str, until: datetime) -> None:
        """Keep `key`'s current version locked until `until`, a date later than its own
        (S3 refuses to shorten a compliance date; the stack never shortens any)."""
        if not self._lock.enabled:
            return
        self._s3.put_object_retention(
            Bucket=self._bucket,
            Key=key,
            Retention={"Mode": self._lock.mode.upper(), "RetainUntilDate": until},
        )

    def set_legal_hold(self, key: str, held: bool) -> None:
        """Put or lift S3's legal hold on `key`'s current version (without a backup lock
        the bucket has no Object Lock: the hold is the record's alone)."""
        if not self._lock.enabled:
            return
        self._s3.put_object_legal_hold(
            Bucket=self._bucket, Key=key, LegalHold={"Status": "ON" if held else "OFF"}
        )

    def upload_stream(
        self,
        key: str,
        stream: Readable,
        expected_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Upload a non-seekable stream with bounded memory (`memory_bound`).

        The part size grows with `expected_size` (see `part_size_for`); a stream
        that ends within the first part is one PutObject. Once each part is in S3,
        `progress` is told the bytes uploaded so far (one call at a time). If
        reading the stream, sending a part or `progress` raises, the multipart
        upload is aborted, no object is created and the exception propagates.
        """
        part_size = part_size_for(expected_size)
        first = bytearray(part_size)
        length = read_into(stream, first)
        if length < part_size:
            del first[length:]
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=first,
                ContentType=CONTENT_TYPE,
                # The algorithm named too (x-amz-sdk-checksum-algorithm): S3 requires it,
                # or Content-MD5, with lock parameters; botocore sends the CRC32 given.
                ChecksumAlgorithm=PART_CHECKSUM,
                ChecksumCRC32=crc32(first),
                **self._lock_parameters(key),
            )
            return
        lock = self._lock_parameters(key)
        StreamUpload(self._s3, self._bucket, key, part_size, progress, lock).run(stream, first)

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

    def put_bytes(
        self, key: str, data: bytes | IO[bytes], metadata: dict[str, str], kind: str
    ) -> None:
        """An object in one request (a compressed WAL segment: bytes, or a file read from
        where it stands, streamed), tagged with its kind (the bucket's lifecycle expires
        overwritten WAL sooner than backups)."""
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=data,
            Metadata=metadata,
            Tagging=f"pgbackups-kind={kind}",
            ContentType="application/octet-stream",
            ChecksumAlgorithm=PART_CHECKSUM,  # computed by botocore; S3 requires one with a lock
            **self._lock_parameters(key),
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

    def open_stream(self, key: str) -> Any:
        """The object's body as it downloads (`read(n)`, `close()`): never all in memory."""
        return self._s3.get_object(Bucket=self._bucket, Key=key)["Body"]

    def metadata(self, key: str) -> dict[str, str]:
        return dict(self._s3.head_object(Bucket=self._bucket, Key=key)["Metadata"])

    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key succeeds."""
        self._s3.delete_object(Bucket=self._bucket, Key=key)
