"""Every route and every role: allowed, or 403 `forbidden` naming the role it needs.

Generated from the routes the template declares, so a route without an access
rule fails here (`pgbackups.domain.access.ROUTES` is the one table).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from pgbackups.api.app import build_api
from pgbackups.domain.access import ROUTES, Role, required_role
from pgbackups.domain.audit import EMPTY_HEAD, AuditEntry, ChainHead
from pgbackups_local.template import Route, http_routes, load_template
from tests.conftest import LambdaContext, load_event

pytestmark = pytest.mark.unit

SAMPLE_PARAMETERS = {
    "db": "shop",
    "id": "01KB3ZQ4Y6M7T2N8S0F1E9V5AA",
    "name": "ci",
    "file": "app.js",
}
TEMPLATE_ROUTES = http_routes(load_template())


class MemoryAuditLog:
    """The audit trail's port in memory."""

    def __init__(self) -> None:
        self.stored: list[AuditEntry] = []

    def head(self) -> ChainHead:
        last = self.stored[-1] if self.stored else None
        return ChainHead(last.seq, last.hash) if last else EMPTY_HEAD

    def append(self, entry: AuditEntry) -> bool:
        self.stored.append(entry)
        return True

    def entries(self, *, newest_first: bool, after: int | None = None) -> Iterator[AuditEntry]:
        return iter(reversed(self.stored) if newest_first else self.stored)


class OnlyTheAuditTrail:
    """Services where any use case fails the request (500): only the trail works."""

    def __init__(self) -> None:
        self.audit = MemoryAuditLog()

    def clock(self) -> datetime:
        return datetime(2026, 12, 6, 3, 0, tzinfo=UTC)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"services.{name} was used")


def request(route: Route, role: Role | None, body: Any = None) -> dict[str, Any]:
    """An HTTP API event for `route`, as the authorizer passes a token with `role`."""
    event = load_event("api-get-database")
    path = route.path
    for name, value in SAMPLE_PARAMETERS.items():
        path = path.replace("{" + name + "}", value)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = route.method
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{route.method} {route.path}"
    event["pathParameters"] = {
        name: value for name, value in SAMPLE_PARAMETERS.items() if "{" + name + "}" in route.path
    }
    event["requestContext"]["authorizer"] = {
        "lambda": {"token": "someone", "role": role.value} if role else {}
    }
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"]["content-type"] = "application/json"
    return event


def resolve(services: Any, event: dict[str, Any]) -> tuple[int, Any]:
    response = build_api(services).resolve(event, LambdaContext())
    body = response["body"]
    try:
        return response["statusCode"], json.loads(body) if body else None
    except ValueError:
        return response["statusCode"], body  # the dashboard's files


def test_every_rule_names_a_route_of_the_template() -> None:
    assert set(ROUTES) == {(route.method, route.path) for route in TEMPLATE_ROUTES}


@pytest.mark.parametrize("role", [None, *Role], ids=lambda role: str(role or "no-role"))
@pytest.mark.parametrize("route", TEMPLATE_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_with_every_role(route: Route, role: Role | None) -> None:
    needed = required_role(route.method, route.path)  # NoRule: a route nobody gave a rule
    services = OnlyTheAuditTrail()
    body = {} if route.method in ("POST", "PUT", "PATCH") else None

    status, answer = resolve(services, request(route, role, body))

    if needed is None or (role is not None and role.allows(needed)):
        assert status != 403, answer
        assert route.authorized == (needed is not None)
    else:
        assert status == 403
        assert answer["error"]["code"] == "forbidden"
        assert answer["error"]["required_role"] == needed.value
        assert f"needs the {needed.value} role" in answer["error"]["message"]
        (entry,) = services.audit.stored
        expected = ("someone", role.value) if role else ("-", "")
        assert (entry.token, entry.role, entry.status) == (*expected, 403)
        assert entry.route == f"{route.method} {route.path}"


@pytest.mark.parametrize(
    ("method", "path", "body", "why"),
    [
        ("PUT", "/v1/databases/{db}/pitr", {"enabled": False}, "disabling continuous backups"),
        ("PATCH", "/v1/databases/{db}", {"url": "postgres://h/db"}, "changing a connection URL"),
        ("PATCH", "/v1/databases/{db}", {"replica_url": None}, "changing a connection URL"),
        (
            "PATCH",
            "/v1/databases/{db}",
            {"retention": {"daily": 3, "weekly": 8}},
            "keeping fewer backups than the default retention",
        ),
    ],
)
def test_what_destroys_needs_admin_even_on_an_operate_route(
    method: str, path: str, body: dict[str, Any], why: str
) -> None:
    route = next(r for r in TEMPLATE_ROUTES if (r.method, r.path) == (method, path))
    services = OnlyTheAuditTrail()

    status, answer = resolve(services, request(route, Role.OPERATE, body))

    assert status == 403
    assert answer["error"]["required_role"] == "admin"
    assert why in answer["error"]["message"]
    # The same route with a harmless body passes the role check (then fails on the fake).
    for harmless in ({"enabled": True}, {"retention": {"daily": 14, "manual": 10}}):
        status, _ = resolve(services, request(route, Role.OPERATE, harmless))
        assert status != 403


def test_plain_reads_are_not_audited_but_changes_downloads_and_refusals_are() -> None:
    services = OnlyTheAuditTrail()
    by_route = {(r.method, r.path): r for r in TEMPLATE_ROUTES}

    resolve(services, request(by_route[("GET", "/v1/databases")], Role.READ))
    resolve(services, request(by_route[("GET", "/v1/databases/{db}/backups/{id}")], Role.READ))
    assert services.audit.stored == []

    archive = by_route[("GET", "/v1/databases/{db}/backups/{id}/archive")]
    resolve(services, request(archive, Role.READ))
    resolve(services, request(by_route[("POST", "/v1/databases/{db}/backups")], Role.OPERATE, {}))
    resolve(services, request(by_route[("DELETE", "/v1/tokens/{name}")], Role.OPERATE))
    # Refused for its input: nothing changed, nothing to record.
    resolve(services, request(by_route[("PUT", "/v1/databases/{db}/schedule")], Role.ADMIN, []))

    assert [(e.route, e.database, e.status) for e in services.audit.stored] == [
        ("GET /v1/databases/{db}/backups/{id}/archive", "shop", 500),  # the fake fails
        ("POST /v1/databases/{db}/backups", "shop", 500),
        ("DELETE /v1/tokens/{name}", "", 403),
    ]
    assert (
        services.audit.stored[0].target
        == "/v1/databases/shop/backups/01KB3ZQ4Y6M7T2N8S0F1E9V5AA/archive"
    )
    assert services.audit.stored[0].source_ip == "203.0.113.10"


def test_a_request_without_a_role_in_the_context_is_refused() -> None:
    route = next(r for r in TEMPLATE_ROUTES if (r.method, r.path) == ("GET", "/v1/databases"))
    event = request(route, None)
    event["requestContext"]["authorizer"] = {"lambda": {"token": "x", "role": "root"}}

    status, answer = resolve(OnlyTheAuditTrail(), event)

    assert status == 403
    assert answer["error"]["code"] == "forbidden"


def test_the_roles_as_the_contract_states_them() -> None:
    def needing(role: Role) -> set[str]:
        return {f"{method} {path}" for (method, path), rule in ROUTES.items() if rule.role is role}

    assert needing(Role.ADMIN) == {
        "POST /v1/databases",
        "DELETE /v1/databases/{db}",
        "DELETE /v1/databases/{db}/backups/{id}",
        "GET /v1/tokens",
        "POST /v1/tokens",
        "DELETE /v1/tokens/{name}",
        "GET /v1/audit",
        "DELETE /v1/databases/{db}/backups/{id}/hold",
    }
    assert needing(Role.OPERATE) == {
        "PATCH /v1/databases/{db}",
        "POST /v1/databases/{db}/backups",
        "PUT /v1/databases/{db}/schedule",
        "PUT /v1/databases/{db}/pitr",
        "PUT /v1/databases/{db}/backups/{id}/hold",
        "POST /v1/databases/{db}/restores",
        "POST /v1/databases/{db}/verifications",
    }
    assert all(method == "GET" for method, _ in map(str.split, needing(Role.READ)))


def test_a_route_without_a_rule_runs_for_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(ROUTES, ("GET", "/v1/databases"))
    route = next(r for r in TEMPLATE_ROUTES if (r.method, r.path) == ("GET", "/v1/databases"))

    status, answer = resolve(OnlyTheAuditTrail(), request(route, Role.ADMIN))

    # Not a 500 from the fake services: the handler never ran.
    assert (status, answer["error"]["code"]) == (404, "not_found")
