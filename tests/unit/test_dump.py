"""pg_dump's command line and the stream checks, with stand-in processes."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
from pathlib import Path

import pytest

from pgbackups.postgres.dump import (
    NOT_AN_ARCHIVE,
    DumpFailed,
    DumpStream,
    PgTools,
    dump_command,
)
from pgbackups.postgres.pgtools import NOWHERE
from pgbackups.postgres.urls import registered_connection

pytestmark = pytest.mark.unit


def test_pg_dump_gets_the_password_through_its_environment_only() -> None:
    target = registered_connection("postgresql://app:hunter2@db/shop")
    argv, env = dump_command(PgTools(Path("/opt")), target, "zstd:3")
    assert not any("hunter2" in arg for arg in argv)
    assert env["PGPASSWORD"] == "hunter2"
    assert argv[0] == "/opt/bin/pg_dump"
    assert "--format=custom" in argv and "--compress=zstd:3" in argv
    assert argv[-1] == f"--dbname={target.conninfo}"
    assert env["LD_LIBRARY_PATH"] == "/opt/lib"


def test_pg_tools_read_no_password_service_or_system_file() -> None:
    env = PgTools(Path("/opt")).environment("pw")
    assert {env["PGPASSFILE"], env["PGSERVICEFILE"], env["PGSYSCONFDIR"]} == {NOWHERE}
    assert not Path(NOWHERE).exists()


def stream_of(script: str) -> DumpStream:
    process = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return DumpStream(process)


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
