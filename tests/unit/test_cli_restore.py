"""Which pg_restore failures are the one known incompatibility (servers before 17 refuse
pg_restore 18's `SET transaction_timeout`) and which are real. The whole restore into
Debian's PostgreSQL 15 is tested end to end (tests/e2e/test_cli_restore.py); these are the
exact stderr lines pg_restore 18.6 printed there."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import pytest

from pgbackups.postgres.pgtools import PgTools
from pgbackups.postgres.restore import (
    RestoreFailed,
    RestoreProgress,
    Target,
    _only_transaction_timeout,
    run_pg_restore,
    summarize_errors,
)
from pgbackups_cli.download import DownloadFailed

pytestmark = pytest.mark.unit

REFUSED = [
    "pg_restore: error: could not execute query: ERROR:  unrecognized configuration "
    'parameter "transaction_timeout"',
    "Command was: SET transaction_timeout = 0;",
]


def test_only_the_transaction_timeout_refusal_is_ignored() -> None:
    assert _only_transaction_timeout(
        [*REFUSED, "pg_restore: warning: errors ignored on restore: 1"]
    )


@pytest.mark.parametrize(
    "report",
    [
        # another error besides it
        [
            *REFUSED,
            "pg_restore: error: could not execute query: ERROR:  cannot drop table public.items "
            "because other objects depend on it",
            "Command was: DROP TABLE IF EXISTS public.items;",
            "pg_restore: warning: errors ignored on restore: 2",
        ],
        # the count says more errors than were shown
        [*REFUSED, "pg_restore: warning: errors ignored on restore: 3"],
        # a failure that is not a list of ignored errors at all
        ['pg_restore: error: connection to server failed: FATAL:  database "x" does not exist'],
        [],
    ],
)
def test_any_other_failure_is_real(report: list[str]) -> None:
    assert not _only_transaction_timeout(report)


def test_the_target_is_read_as_libpq_reads_it() -> None:
    # An unencoded `#` in the password: Python's URL parser and libpq disagree; libpq wins.
    target = Target.parse("postgresql://app:Hash#Secret1@db.example.com:6543/shop")
    assert (target.password, target.database, target.address) == (
        "Hash#Secret1",
        "shop",
        "db.example.com:6543",
    )
    assert target.redacted == "postgresql://app:***@db.example.com:6543/shop"
    assert "Hash" not in target.connection_string()


# -- pg_restore's failures in a few lines -------------------------------------------------------


def denied(table: str) -> list[str]:
    return [
        "pg_restore: error: could not execute query: ERROR:  permission denied for schema public",
        f"Command was: CREATE TABLE public.{table} (id bigint);",
    ]


def test_many_errors_are_counted_the_first_shown_and_the_privilege_named() -> None:
    report = [line for n in range(40) for line in denied(f"t{n}")]
    report.append("pg_restore: warning: errors ignored on restore: 40")
    text = summarize_errors(1, report, {"user": "reader"})
    assert text.splitlines() == [
        "pg_restore failed (exit code 1): 40 errors, the first 3:",
        *denied("t0"),
        *denied("t1"),
        *denied("t2"),
        "Missing privileges: reader was refused (permission denied for schema public). "
        "Restore as the owner of the objects the backup holds (or a superuser), with CREATE "
        "on the database and its schemas.",
    ]


def test_a_single_error_is_shown_whole() -> None:
    report = [
        "pg_restore: error: could not execute query: ERROR:  cannot drop table public.items "
        "because other objects depend on it",
        "Command was: DROP TABLE IF EXISTS public.items;",
        "pg_restore: warning: errors ignored on restore: 1",
    ]
    assert summarize_errors(1, report, {}).splitlines() == [
        "pg_restore failed (exit code 1): 1 error:",
        *report[:2],
    ]


# -- streaming into pg_restore -----------------------------------------------------------------


@pytest.fixture
def fake_pg_restore(tmp_path: Path) -> tuple[PgTools, Path]:
    """A pg_restore that keeps what it reads on stdin and says it created two tables."""
    received = tmp_path / "received"
    (tmp_path / "bin").mkdir()
    script = tmp_path / "bin" / "pg_restore"
    script.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$@\" > {tmp_path}/argv\n"
        f"cat > {received}\n"
        "echo 'pg_restore: creating TABLE \"public.items\"' >&2\n"
        "echo 'pg_restore: processing data for table \"public.items\"' >&2\n"
    )
    script.chmod(0o755)
    return PgTools(tmp_path), received


TARGET = Target.parse("postgresql://app:s3cret@db.example.com:6543/shop")


def test_the_archive_is_streamed_into_pg_restore(fake_pg_restore: tuple[PgTools, Path]) -> None:
    tools, received = fake_pg_restore
    chunks = [b"PGDMP", b"x" * 100_000, b"end"]

    def feed(sink: IO[bytes]) -> None:
        for chunk in chunks:
            sink.write(chunk)

    done = RestoreProgress()
    run_pg_restore(tools, None, TARGET, feed=feed, tables=["items"], schemas=["s"], done=done)
    assert received.read_bytes() == b"".join(chunks)
    argv = (tools.root / "argv").read_text().splitlines()
    assert "--table=items" in argv and "--schema=s" in argv
    assert not argv[-1].endswith(".pgsql")  # no file: standard input
    assert done.entries == [
        'creating TABLE "public.items"',
        'processing data for table "public.items"',
    ]


def test_a_digest_mismatch_while_streaming_fails_the_restore(
    fake_pg_restore: tuple[PgTools, Path],
) -> None:
    tools, _ = fake_pg_restore

    def feed(sink: IO[bytes]) -> None:
        sink.write(b"PGDMP tampered")
        raise DownloadFailed("SHA-256 mismatch: the backup's is aaaa, the download's is bbbb")

    done = RestoreProgress()
    with pytest.raises(RestoreFailed, match="SHA-256 mismatch"):
        run_pg_restore(tools, None, TARGET, feed=feed, done=done)
    assert done.summary() == (
        '2 entries were restored, the last: processing data for table "public.items"'
    )
