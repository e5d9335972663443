"""The audit trail on moto: a chain that concurrent writers cannot fork, and that
`verify` finds broken when an entry is changed or removed behind its back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from pgbackups.adapters.audit import TTL_ATTRIBUTE, AuditLog
from pgbackups.domain.audit import GENESIS, AuditEvent, entry_hash
from pgbackups.services import Services
from pgbackups.usecases.audit import AuditFilter, list_entries, record, verify
from pgbackups_local.template import load_template
from tests.conftest import AwsStack

pytestmark = pytest.mark.integration

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def event(n: int, *, database: str = "shop", who: str = "ci") -> AuditEvent:
    return AuditEvent(
        at=(START + timedelta(minutes=n)).isoformat().replace("+00:00", "Z"),
        token=who,
        role="operate",
        source_ip="203.0.113.10",
        method="POST",
        route="POST /v1/databases/{db}/backups",
        target=f"/v1/databases/{database}/backups",
        database=database,
        status=202,
    )


def key(aws: AwsStack, seq: int) -> dict[str, dict[str, str]]:
    return {"pk": {"S": "AUDIT"}, "sk": {"S": f"ENTRY#{seq:012d}"}}


def test_concurrent_writers_do_not_fork_the_chain(services: Services) -> None:
    def write(n: int) -> int:
        return record(services.audit, event(n)).seq

    with ThreadPoolExecutor(max_workers=8) as pool:
        seqs = list(pool.map(write, range(40)))

    assert sorted(seqs) == list(range(1, 41))
    entries = list(services.audit.entries(newest_first=False))
    assert [entry.seq for entry in entries] == list(range(1, 41))
    assert entries[0].prev == GENESIS
    assert all(later.prev == earlier.hash for earlier, later in pairwise(entries))
    assert all(entry.hash == entry_hash(entry) for entry in entries)
    result = verify(services.audit)
    assert (result.entries, result.head.seq, result.problem) == (40, 40, None)


def test_an_entry_changed_in_dynamodb_is_found(services: Services, aws: AwsStack) -> None:
    for n in range(5):
        record(services.audit, event(n))
    aws.dynamodb.update_item(
        TableName=aws.settings.table_name,
        Key=key(aws, 3),
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"N": "403"}},
    )

    problem = verify(services.audit).problem

    assert problem is not None
    assert (problem.seq, problem.reason) == (3, "entry 3 was changed after it was written")


def test_an_entry_rewritten_with_a_fresh_hash_is_found_by_its_successor(
    services: Services, aws: AwsStack
) -> None:
    for n in range(5):
        record(services.audit, event(n))
    forged = next(e for e in services.audit.entries(newest_first=False) if e.seq == 2)
    forged = type(forged)(**{**forged.fields(), "token": "someone-else"})
    aws.dynamodb.update_item(
        TableName=aws.settings.table_name,
        Key=key(aws, 2),
        UpdateExpression="SET #t = :t, #h = :h",
        ExpressionAttributeNames={"#t": "token", "#h": "hash"},
        ExpressionAttributeValues={":t": {"S": "someone-else"}, ":h": {"S": entry_hash(forged)}},
    )

    problem = verify(services.audit).problem

    assert problem is not None
    assert (problem.seq, problem.reason) == (3, "entry 3 does not hold the hash of entry 2")


@pytest.mark.parametrize(
    ("removed", "seq", "reason"),
    [
        (3, 3, "entries 3 to 3 are missing"),
        (5, 5, "entries 5 to 5 (the newest) are missing"),
    ],
)
def test_a_removed_entry_is_found(
    services: Services, aws: AwsStack, removed: int, seq: int, reason: str
) -> None:
    for n in range(5):
        record(services.audit, event(n))
    aws.dynamodb.delete_item(TableName=aws.settings.table_name, Key=key(aws, removed))

    problem = verify(services.audit).problem

    assert problem is not None
    assert (problem.seq, problem.reason) == (seq, reason)


def test_entries_expire_after_400_days(services: Services, aws: AwsStack) -> None:
    entry = record(services.audit, event(0))
    item = aws.dynamodb.get_item(TableName=aws.settings.table_name, Key=key(aws, 1))["Item"]
    assert int(item["ttl"]["N"]) == int((START + timedelta(days=400)).timestamp())
    assert entry.seq == 1
    # The table's TTL attribute, as the template declares it (moto's tables are built
    # without it: CreateTable takes no TTL).
    table = load_template()["Resources"]["Table"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def test_listing_newest_first_with_filters_and_pages(services: Services) -> None:
    for n in range(7):
        record(services.audit, event(n, database="shop" if n % 2 else "crm"))
    log: AuditLog = services.audit  # type: ignore[assignment]

    page, cursor = list_entries(log, AuditFilter(database="shop"), limit=2)
    assert [e.seq for e in page] == [6, 4]
    page, cursor = list_entries(log, AuditFilter(database="shop"), limit=2, cursor=cursor)
    assert ([e.seq for e in page], cursor) == ([2], None)

    since = START + timedelta(minutes=2)
    until = START + timedelta(minutes=5)
    page, _ = list_entries(log, AuditFilter(since=since, until=until), limit=10)
    assert [e.seq for e in page] == [5, 4, 3]
    assert list_entries(log, AuditFilter(token="nobody"), limit=10) == ([], None)
