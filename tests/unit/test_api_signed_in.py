"""GET /v1/token: the signed-in token's name, role and expiry, as the authorizer passed them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pgbackups.api.app import build_api
from pgbackups.domain.access import Role, TokenRecord
from tests.conftest import LambdaContext, load_event

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


class StoredTokens:
    """The token store's listing, all this route reads."""

    def __init__(self, *records: TokenRecord) -> None:
        self.records = list(records)

    def list(self) -> list[TokenRecord]:
        return self.records


class Services:
    def __init__(self, *records: TokenRecord) -> None:
        self.tokens = StoredTokens(*records)

    def clock(self) -> datetime:
        return NOW

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"services.{name} was used")


def get_token(services: Services, context: dict[str, str]) -> tuple[int, Any]:
    event = load_event("api-list-databases")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/token"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /v1/token"
    event["requestContext"]["authorizer"] = {"lambda": context}
    response = build_api(services).resolve(event, LambdaContext())  # type: ignore[arg-type]
    return response["statusCode"], json.loads(response["body"])


def record(name: str, role: Role, expires_at: datetime | None) -> TokenRecord:
    return TokenRecord(
        name=name,
        role=role,
        token_id="01KB3ZQ4Y6M7T2N8S0F1E9V5AA",
        created_at=NOW - timedelta(days=1),
        expires_at=expires_at,
    )


def test_a_stored_token_is_told_its_name_role_and_expiry() -> None:
    services = Services(
        record("ci", Role.OPERATE, None),
        record("dashboard", Role.READ, NOW + timedelta(days=30)),
    )

    status, body = get_token(services, {"token": "dashboard", "role": "read"})

    assert status == 200
    assert body == {"name": "dashboard", "role": "read", "expires_at": "2027-01-05T03:00:00Z"}


def test_the_deploy_token_is_an_admin_that_does_not_expire() -> None:
    status, body = get_token(Services(), {"token": "deploy", "role": "admin"})

    assert (status, body) == (200, {"name": "deploy", "role": "admin", "expires_at": None})


def test_without_a_role_the_route_is_refused() -> None:
    status, body = get_token(Services(), {})

    assert status == 403
    assert body["error"]["required_role"] == "read"
