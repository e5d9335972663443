"""Tokens in the domain and the authorizer's use case, on in-memory stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pgbackups.domain.access import (
    IssuedToken,
    Role,
    TokenRecord,
    digest_matches,
    issue_token,
    token_id_of,
)
from pgbackups.domain.audit import EMPTY_HEAD, AuditEntry, ChainHead
from pgbackups.domain.errors import InvalidInput
from pgbackups.usecases import audit
from pgbackups.usecases.tokens import Authenticator, Bearer, Request

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
REQUEST = Request("198.51.100.7", "GET", "GET /v1/databases", "/v1/databases")


class MemoryTokens:
    def __init__(self, *issued: IssuedToken) -> None:
        self.items = {i.record.token_id: (i.record, i.salt, i.digest) for i in issued}
        self.touched: list[str] = []

    def get(self, token_id: str) -> tuple[TokenRecord, str, str] | None:
        return self.items.get(token_id)

    def touch(self, token_id: str, at: datetime) -> None:
        self.touched.append(token_id)


class BusyAuditLog:
    """Another writer always takes the head's place first."""

    def __init__(self) -> None:
        self.attempts = 0

    def head(self) -> ChainHead:
        return EMPTY_HEAD

    def append(self, entry: AuditEntry) -> bool:
        self.attempts += 1
        return False

    def entries(self, *, newest_first: bool, after: int | None = None) -> Iterator[AuditEntry]:
        return iter(())


def test_a_token_carries_its_id_and_only_a_salted_digest_is_kept() -> None:
    issued = issue_token("ci", Role.READ, NOW, None)

    assert token_id_of(issued.secret) == issued.record.token_id
    assert issued.secret not in (issued.digest, issued.salt)
    assert digest_matches(issued.secret, issued.salt, issued.digest)
    assert not digest_matches(issued.secret + "x", issued.salt, issued.digest)
    other = issue_token("ci", Role.READ, NOW, None)
    assert other.secret != issued.secret and other.salt != issued.salt


@pytest.mark.parametrize(
    "offered",
    ["", "pgb", "pgb_", "pgb_01KB3ZQ4Y6M7T2N8S0F1E9V5AA", "pgb_01KB3ZQ4Y6M7T2N8S0F1E9V5AA_",
     "xyz_01KB3ZQ4Y6M7T2N8S0F1E9V5AA_abc", "pgb_../../x_abc", "pgb_01kb3zq4y6m7t2n8s0f1e9v5aa_abc"],
)  # fmt: skip
def test_what_is_not_one_of_our_tokens_has_no_id(offered: str) -> None:
    assert token_id_of(offered) is None


@pytest.mark.parametrize("name", ["deploy", "", "Upper", "-x", "a b", "x" * 64])
def test_token_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        issue_token(name, Role.READ, NOW, None)


def test_the_authorizer_refuses_even_when_the_audit_trail_is_too_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit.time, "sleep", lambda seconds: None)
    issued = issue_token("ci", Role.OPERATE, NOW - timedelta(days=2), NOW - timedelta(days=1))
    trail = BusyAuditLog()
    authenticator = Authenticator(lambda offered: False, MemoryTokens(issued), trail, lambda: NOW)

    assert authenticator.authorize(issued.secret, REQUEST) is None  # expired
    assert trail.attempts > 1  # it tried, then gave up without letting the request in


def test_the_deploy_token_is_the_admin_named_deploy() -> None:
    authenticator = Authenticator(
        lambda offered: offered == "s3cret", MemoryTokens(), BusyAuditLog(), lambda: NOW
    )

    assert authenticator.authorize("s3cret", REQUEST) == Bearer("deploy", Role.ADMIN)
