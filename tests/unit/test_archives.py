"""Archives of any size: the part size grows with the expected size, memory stays bounded.

The stream is simulated (it "fills" a buffer without writing to it, so no page of
data is touched) and S3 is answered in botocore's own `before-call` hook, so
200 GiB go through the real upload in seconds without a byte of real data.
"""

from __future__ import annotations

import threading
import tracemalloc
from typing import Any, ClassVar

import boto3
import pytest
from botocore.httpchecksum import Crc32Checksum

from pgbackups.adapters import archives
from pgbackups.adapters.archives import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    ArchiveStore,
    crc32,
    memory_bound,
    part_size_for,
)
from pgbackups.domain.models import expected_archive_size

pytestmark = pytest.mark.unit

GIB = 1024**3
MIB = 1024**2
# What each part costs until the upload completes, besides its bytes (its ETag for
# CompleteMultipartUpload, the future that carries it, and this fake's record of it).
PART_BOOKKEEPING = 4096


class SimulatedDump:
    """`total` bytes of pg_dump output, as the upload reads it."""

    def __init__(self, total: int) -> None:
        self.left = total

    def readinto(self, buffer: memoryview) -> int:
        count = min(len(buffer), self.left, MIB)  # a pipe hands over a little at a time
        self.left -= count
        return count


class Answered:
    """The HTTP side of an answer botocore takes from a `before-call` handler."""

    status_code = 200
    headers: ClassVar[dict[str, str]] = {}


class FakeS3:
    """Answers the multipart upload's calls before they leave botocore; records the parts."""

    def __init__(self, failing_part: int | None = None) -> None:
        self.failing_part = failing_part
        # S3 answers the failing part before the parts after it (which wait for it):
        # otherwise, answered at once, they could let the reading run ahead for as long
        # as the failing one takes, and the test would depend on thread scheduling.
        self.failed = threading.Event()
        self.parts: list[tuple[int, int]] = []
        self.completed: list[dict[str, Any]] = []
        self.objects: list[int] = []
        self.checksums: dict[int, str] = {}
        self.aborted = 0
        self.client = boto3.client(
            "s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y"
        )
        self.client.meta.events.register("before-call.s3", self._answer)

    def _answer(self, model: Any, params: dict[str, Any], **kwargs: Any) -> Any:
        if model.name == "CreateMultipartUpload":
            return Answered(), {"UploadId": "upload"}
        if model.name == "UploadPart":
            number = int(params["query_string"]["partNumber"])
            if number == self.failing_part:
                self.failed.set()
                raise ConnectionError("the part could not be sent")
            if self.failing_part is not None and number > self.failing_part:
                assert self.failed.wait(timeout=30)
            self.parts.append((number, len(params["body"])))
            self.checksums[number] = params["headers"]["x-amz-checksum-crc32"]
            return Answered(), {"ETag": '"etag"'}
        if model.name == "PutObject":
            self.objects.append(len(params["body"]))
            return Answered(), {}
        if model.name == "AbortMultipartUpload":
            self.aborted += 1
            return Answered(), {}
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
    assert memory_bound(MIN_PART_SIZE) == 48 * MIB
    assert memory_bound(MAX_PART_SIZE) == 1575 * MIB


def test_expected_size_follows_the_last_backups_ratio() -> None:
    assert expected_archive_size(None, 0.4) is None
    assert expected_archive_size(100 * GIB, None) == 100 * GIB
    assert expected_archive_size(100 * GIB, 0.25) == 25 * GIB


def test_a_200_gib_stream_is_split_into_valid_parts_with_bounded_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CRC32 of 200 GiB would take a minute: here every part's is the same
    # (test_crc32_is_the_one_s3_computes checks the real one).
    monkeypatch.setattr(archives, "crc32", lambda data: "AAAAAA==")
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
    held = peak - len(sizes) * PART_BOOKKEEPING
    assert held <= memory_bound(part_size), f"{held / MIB:.0f} MiB held at once"


def test_without_an_expected_size_the_parts_are_the_benchmarked_8_mib() -> None:
    s3 = FakeS3()
    ArchiveStore(s3.client, "bucket").upload_stream("k", SimulatedDump(100 * MIB + 3))
    assert [size for _, size in sorted(s3.parts)] == [8 * MIB] * 12 + [4 * MIB + 3]


def test_a_stream_that_ends_within_its_first_part_is_one_put() -> None:
    s3 = FakeS3()
    ArchiveStore(s3.client, "bucket").upload_stream("k", SimulatedDump(3 * MIB))
    assert s3.objects == [3 * MIB]
    assert s3.parts == [] and s3.completed == []


def test_a_part_that_fails_stops_the_reading_and_aborts_the_upload() -> None:
    s3 = FakeS3(failing_part=3)
    dump = SimulatedDump(1 * GIB)
    with pytest.raises(ConnectionError, match="could not be sent"):
        ArchiveStore(s3.client, "bucket").upload_stream("k", dump)
    assert s3.aborted == 1 and s3.completed == []
    # Reading stopped within the parts the buffers hold, not at the end of the stream.
    assert GIB - dump.left <= memory_bound(MIN_PART_SIZE) + 3 * MIN_PART_SIZE


class FailingDump(SimulatedDump):
    def readinto(self, buffer: memoryview) -> int:
        if self.left <= 50 * MIB:
            raise OSError("pg_dump failed")
        return super().readinto(buffer)


def test_a_stream_that_fails_aborts_the_upload() -> None:
    s3 = FakeS3()
    with pytest.raises(OSError, match="pg_dump failed"):
        ArchiveStore(s3.client, "bucket").upload_stream("k", FailingDump(100 * MIB))
    assert s3.aborted == 1 and s3.completed == [] and s3.objects == []


def test_crc32_is_the_one_s3_computes() -> None:
    for data in (b"", b"hello", bytes(range(256)) * 4099):
        assert crc32(bytearray(data)) == Crc32Checksum().handle(data)


def test_each_part_carries_its_crc32() -> None:
    s3 = FakeS3()
    ArchiveStore(s3.client, "bucket").upload_stream("k", SimulatedDump(20 * MIB))
    # SimulatedDump does not write: the buffers hold what they were made with, zeros.
    assert s3.checksums == {
        1: crc32(bytearray(8 * MIB)),
        2: crc32(bytearray(8 * MIB)),
        3: crc32(bytearray(4 * MIB)),
    }


def test_progress_is_told_the_bytes_in_s3_as_each_part_arrives() -> None:
    s3 = FakeS3()
    told: list[int] = []
    ArchiveStore(s3.client, "bucket").upload_stream(
        "k", SimulatedDump(100 * MIB + 3), progress=told.append
    )
    # One report per part, each total larger than the last, the whole archive at the end
    # (parts arrive in any order, so the totals are sums of whichever parts arrived).
    assert len(told) == 13
    assert told == sorted(set(told))
    assert told[-1] == 100 * MIB + 3


def test_a_progress_that_fails_aborts_the_upload() -> None:
    s3 = FakeS3()

    def refuse(uploaded: int) -> None:
        raise RuntimeError("cannot record the progress")

    with pytest.raises(RuntimeError, match="cannot record"):
        ArchiveStore(s3.client, "bucket").upload_stream(
            "k", SimulatedDump(100 * MIB), progress=refuse
        )
    assert s3.aborted == 1 and s3.completed == []
