"""A program's stdout streamed with checks (its first bytes, its exit code), with
stand-in processes."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess

import pytest

from pgbackups.postgres.dump import ARCHIVE_MAGIC, NOT_AN_ARCHIVE
from pgbackups.postgres.streaming import DumpFailed, DumpStream

pytestmark = pytest.mark.unit


def stream_of(script: str) -> DumpStream:
    process = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return DumpStream(process, magic=ARCHIVE_MAGIC, not_magic=NOT_AN_ARCHIVE, program="pg_dump")


def read_all(stream: DumpStream) -> bytes:
    reader = io.BufferedReader(stream)
    try:
        return reader.read()
    finally:
        stream.close()


def test_a_stream_without_the_archive_header_is_refused() -> None:
    with pytest.raises(DumpFailed, match=re.escape(NOT_AN_ARCHIVE)):
        read_all(stream_of("printf 'COPY public.t ...'"))


def test_a_non_zero_exit_after_a_good_header_fails_with_the_last_stderr_lines() -> None:
    script = (
        "printf 'PGDMP partial'; for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i >&2; done; exit 3"
    )
    with pytest.raises(DumpFailed) as failure:
        read_all(stream_of(script))
    assert str(failure.value).splitlines() == [f"line {i}" for i in range(3, 11)]


def test_a_good_stream_is_hashed_and_counted() -> None:
    stream = stream_of("printf 'PGDMP archive bytes'")
    assert read_all(stream) == b"PGDMP archive bytes"
    assert stream.size == 19
    assert stream.sha256.hexdigest() == hashlib.sha256(b"PGDMP archive bytes").hexdigest()
