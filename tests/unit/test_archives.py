"""Archives of any size: the part size grows with the expected size, memory stays bounded.

The stream is simulated (zero-filled parts that cost no page until touched) and
S3 is answered in botocore's own `before-call` hook, so 200 GiB go through the
real s3transfer machinery in seconds without a byte of real data.
"""

from __future__ import annotations

import io
import tracemalloc
from typing import Any, ClassVar

import boto3
import pytest

from pgbackups.adapters.archives import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    ArchiveStore,
    memory_bound,
    part_size_for,
)
from pgbackups.domain.models import expected_archive_size

pytestmark = pytest.mark.unit

GIB = 1024**3
MIB = 1024**2


class SimulatedDump(io.RawIOBase):
    """`total` bytes of pg_dump output, as s3transfer reads a non-seekable stream."""

    def __init__(self, total: int) -> None:
        self.left = total

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)  # calloc'd: no page is touched, tracemalloc still counts it


class Answered:
    """The HTTP side of an answer botocore takes from a `before-call` handler."""

    status_code = 200
    headers: ClassVar[dict[str, str]] = {}


class FakeS3:
    """Answers the multipart upload's calls before they leave botocore; records the parts."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, int]] = []
        self.completed: list[dict[str, Any]] = []
        self.client = boto3.client(
            "s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y"
        )
        self.client.meta.events.register("before-call.s3", self._answer)

    def _answer(self, model: Any, params: dict[str, Any], **kwargs: Any) -> Any:
        if model.name == "CreateMultipartUpload":
            return Answered(), {"UploadId": "upload"}
        if model.name == "UploadPart":
            body = params["body"]
            body.seek(0, io.SEEK_END)
            self.parts.append((int(params["query_string"]["partNumber"]), body.tell()))
            return Answered(), {"ETag": '"etag"'}
        if model.name == "CompleteMultipartUpload":
            self.completed.append(params)
            return Answered(), {}
        raise AssertionError(f"unexpected call {model.name}")


def test_part_size_grows_with_the_expected_size_within_s3_limits() -> None:
    assert part_size_for(None) == MIN_PART_SIZE == 8 * MIB
    assert part_size_for(10 * GIB) == MIN_PART_SIZE
    assert part_size_for(200 * GIB) == 41 * MIB
    # The largest part size lets 10,000 parts reach S3's 5 TiB object limit.
    assert MAX_PART_SIZE * MAX_PARTS >= MAX_OBJECT_SIZE
    assert part_size_for(MAX_OBJECT_SIZE) == MAX_PART_SIZE == 525 * MIB
    assert part_size_for(50 * 1024 * GIB) == MAX_PART_SIZE  # never above it
    for expected in (1, 5 * GIB, 78 * GIB, 300 * GIB, 2 * 1024 * GIB, MAX_OBJECT_SIZE // 2):
        size = part_size_for(expected)
        assert size % MIB == 0 and 5 * MIB <= size <= 5 * GIB
        # Twice the expected size still fits in 10,000 parts (below 5 TiB).
        assert min(2 * expected, MAX_OBJECT_SIZE) <= size * MAX_PARTS
    assert memory_bound(MIN_PART_SIZE) == 64 * MIB
    assert memory_bound(MAX_PART_SIZE) == 2100 * MIB


def test_expected_size_follows_the_last_backups_ratio() -> None:
    assert expected_archive_size(None, 0.4) is None
    assert expected_archive_size(100 * GIB, None) == 100 * GIB
    assert expected_archive_size(100 * GIB, 0.25) == 25 * GIB


def test_a_200_gib_stream_is_split_into_valid_parts_with_bounded_memory() -> None:
    total = 200 * GIB
    s3 = FakeS3()
    tracemalloc.start()
    try:
        ArchiveStore(s3.client, "bucket").upload_stream(
            "databases/big/backups/x.pgsql", SimulatedDump(total), expected_size=total
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    part_size = part_size_for(total)
    sizes = [size for _, size in sorted(s3.parts)]
    assert sum(sizes) == total
    assert len(sizes) <= MAX_PARTS
    assert sorted(number for number, _ in s3.parts) == list(range(1, len(sizes) + 1))
    assert all(size == part_size for size in sizes[:-1]) and 0 < sizes[-1] <= part_size
    assert len(s3.completed) == 1
    assert peak <= memory_bound(part_size), f"{peak / MIB:.0f} MiB held at once"


def test_without_an_expected_size_the_parts_are_the_benchmarked_8_mib() -> None:
    s3 = FakeS3()
    ArchiveStore(s3.client, "bucket").upload_stream("k", SimulatedDump(100 * MIB + 3))
    assert [size for _, size in sorted(s3.parts)] == [8 * MIB] * 12 + [4 * MIB + 3]
