"""Which pg_restore failures are the one known incompatibility (servers before 17 refuse
pg_restore 18's `SET transaction_timeout`) and which are real. The whole restore into
Debian's PostgreSQL 15 is tested end to end (tests/e2e/test_cli_restore.py); these are the
exact stderr lines pg_restore 18.6 printed there."""

from __future__ import annotations

import pytest

from pgbackups_cli.restore import Target, _only_transaction_timeout

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
