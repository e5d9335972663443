"""The HTTP API over HTTP: the local gateway, the Lambda authorizer and the token secret.

Every route that template.yaml protects answers 401 without a token and 403
with a wrong one, exactly as API Gateway does; the OpenAPI document is public
and valid.
"""

from __future__ import annotations

import io
import json
import secrets
from typing import Any

import pytest
import requests
from openapi_spec_validator import validate

from pgbackups_local.gateway import Gateway
from pgbackups_local.template import http_routes, load_template
from tests.conftest import (
    ROOT,
    AwsStack,
    LambdaContext,
    load_event,
    load_function,
)

pytestmark = pytest.mark.integration

BACKUP_ID = "01KEZF7CZ87WMWEMMEK3Q551MX"
# The deploy-time token: the admin named "deploy".
ADMITTED = {"isAuthorized": True, "context": {"token": "deploy", "role": "admin"}}
PROTECTED = [route for route in http_routes(load_template()) if route.authorized]


@pytest.fixture
def token(deploy_token: str) -> str:
    return deploy_token


def concrete(path: str) -> str:
    return path.replace("{db}", "shop").replace("{id}", BACKUP_ID)


def send(gateway: Gateway, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{gateway.url}{path}", timeout=30, **kwargs)


def test_the_template_protects_every_route_but_the_openapi_document_and_the_dashboard() -> None:
    routes = {
        (route.method, route.path): route.authorized for route in http_routes(load_template())
    }

    assert routes.pop(("GET", "/v1/openapi.json")) is False
    assert routes.pop(("GET", "/")) is False
    assert routes.pop(("GET", "/static/{file}")) is False
    assert len(routes) == 29
    assert all(routes.values())


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: f"{r.method} {r.path}")
def test_a_protected_route_is_401_without_a_token_and_403_with_a_wrong_one(
    gateway: Gateway, token: str, route: Any
) -> None:
    path = concrete(route.path)

    for headers in ({}, {"Authorization": ""}):
        missing = send(gateway, route.method, path, headers=headers)
        assert missing.status_code == 401
        assert missing.json() == {"message": "Unauthorized"}

    for authorization in (
        "Bearer wrong-token",
        f"Bearer {token[:-1]}",
        f"Bearer {token}x",
        f"Basic {token}",
        token,
        "Bearer ",
    ):
        denied = send(gateway, route.method, path, headers={"Authorization": authorization})
        assert denied.status_code == 403, authorization
        assert denied.json() == {"message": "Forbidden"}

    allowed = send(gateway, route.method, path, headers={"Authorization": f"Bearer {token}"})
    # The API's own answer: the (empty) list, or no database "shop" yet.
    assert allowed.status_code in (200, 404, 422)
    assert allowed.json() in (
        {"databases": []},
        {"tokens": []},
        {"name": "deploy", "role": "admin", "expires_at": None},  # the signed-in token
    ) or ("error" in allowed.json() or "entries" in allowed.json())  # the audit trail


def test_the_openapi_document_is_public_valid_and_complete(gateway: Gateway) -> None:
    answer = send(gateway, "GET", "/v1/openapi.json")

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    document = answer.json()
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The API token",
    }
    assert document["security"] == [{"bearerAuth": []}]
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    assert documented == {(route.method, route.path) for route in PROTECTED}


def test_the_dashboard_is_served_without_a_token(gateway: Gateway) -> None:
    page = send(gateway, "GET", "/")
    script = send(gateway, "GET", "/static/app.js")

    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert script.status_code == 200 and script.headers["Content-Type"].startswith(
        "text/javascript"
    )
    for answer in (page, script, send(gateway, "GET", "/static/template.yaml")):
        assert (
            answer.headers["Content-Security-Policy"]
            == "default-src 'self'; frame-ancestors 'none'"
        )
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_routes_are_the_gateways_404(gateway: Gateway, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    for method, path in (
        ("POST", "/"),
        ("GET", "/static/app.js/x"),
        ("GET", "/v2/databases"),
        ("PUT", "/v1/databases"),
        ("GET", "/v1/databases/shop/backups/x/y/z"),
    ):
        answer = send(gateway, method, path, headers=auth)
        assert answer.status_code == 404
        assert answer.json() == {"message": "Not Found"}


def test_a_round_trip_over_http(
    gateway: Gateway, token: str, database_name: str, database_url: str
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    base = f"/v1/databases/{database_name}"

    created = send(
        gateway,
        "POST",
        "/v1/databases",
        headers=auth,
        json={"name": database_name, "url": database_url},
    )
    assert created.status_code == 201
    assert created.json()["name"] == database_name

    listed = send(gateway, "GET", "/v1/databases", headers=auth)
    assert [db["name"] for db in listed.json()["databases"]] == [database_name]

    backup = send(gateway, "POST", f"{base}/backups", headers=auth)
    assert backup.status_code == 202
    runner = gateway.module("api").services.runner
    assert runner.calls == [(database_name, backup.json()["id"])]

    page = send(
        gateway, "GET", f"{base}/backups", headers=auth, params={"limit": 1, "status": "scheduled"}
    )
    assert page.status_code == 200
    assert [b["id"] for b in page.json()["backups"]] == [backup.json()["id"]]

    schedule = send(
        gateway, "PUT", f"{base}/schedule", headers=auth, json={"hour": 6, "timezone": "UTC"}
    )
    assert schedule.status_code == 200
    assert schedule.json()["hour"] == 6

    not_json = send(
        gateway,
        "PATCH",
        base,
        headers=auth | {"Content-Type": "application/json"},
        data=b"\xff\xfe{",
    )
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == "malformed_body"

    removed = send(gateway, "DELETE", base, headers=auth)
    assert removed.status_code == 204
    assert removed.content == b""


# -- the authorizer function itself ------------------------------------------------------------


def authorize(module: Any, context: LambdaContext, authorization: str | None) -> Any:
    event = load_event("authorizer")
    if authorization is None:
        del event["headers"]["authorization"]
        event["identitySource"] = []
    else:
        event["headers"]["authorization"] = authorization
        event["identitySource"] = [authorization]
    return module.handler(event, context)


def test_the_authorizer_answers_simple_responses_without_logging_the_token(
    token: str, lambda_context: LambdaContext, logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    authorizer = load_function("authorizer")

    assert authorize(authorizer, lambda_context, f"Bearer {token}") == ADMITTED
    assert authorize(authorizer, lambda_context, f"bearer  {token} ") == ADMITTED
    assert authorize(authorizer, lambda_context, "Bearer nope") == {"isAuthorized": False}
    assert authorize(authorizer, lambda_context, f"Token {token}") == {"isAuthorized": False}
    assert authorize(authorizer, lambda_context, None) == {"isAuthorized": False}

    captured = capsys.readouterr()
    written = logs.getvalue() + captured.out + captured.err
    assert "RequestsAuthorized" in written  # its metrics were captured indeed
    assert token not in written
    assert "nope" not in written


def test_the_authorizer_reads_the_token_once_per_cache_period(
    aws: AwsStack, token: str, lambda_context: LambdaContext
) -> None:
    authorizer = load_function("authorizer")
    assert authorize(authorizer, lambda_context, f"Bearer {token}") == ADMITTED

    rotated = secrets.token_urlsafe(36)
    aws.secretsmanager.put_secret_value(
        SecretId=f"{aws.settings.secret_prefix}/api-token", SecretString=rotated
    )

    # Cached for up to 5 minutes, like API Gateway's own authorizer cache.
    assert authorize(authorizer, lambda_context, f"Bearer {token}") == ADMITTED
    assert (
        load_function("authorizer").handler(
            load_event("authorizer") | {"headers": {"authorization": f"Bearer {rotated}"}},
            lambda_context,
        )
        == ADMITTED
    )


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_the_authorizer_fails_closed_when_the_secret_is_missing(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch, lambda_context: LambdaContext
) -> None:
    monkeypatch.setenv("TOKEN_SECRET_ID", f"{aws.settings.secret_prefix}/no-such-secret")
    authorizer = load_function("authorizer")

    # An exception: API Gateway answers 500 and lets nobody in.
    with pytest.raises(Exception, match=r"ResourceNotFoundException|can't find"):
        authorize(authorizer, lambda_context, "Bearer anything")


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_an_authorizer_failure_is_the_gateways_500(
    aws: AwsStack, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN_SECRET_ID", f"{aws.settings.secret_prefix}/no-such-secret")
    with Gateway(functions_dir=ROOT / "functions") as gateway:
        answer = send(gateway, "GET", "/v1/databases", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 500
    assert answer.json() == {"message": "Internal Server Error"}


def test_the_sample_events_are_what_the_gateway_would_send(gateway: Gateway) -> None:
    """events/api-*.json have the routes and shape of the gateway's own payloads."""
    keys = {f"{route.method} {route.path}" for route in http_routes(load_template())}
    for path in sorted((ROOT / "events").glob("api-*.json")):
        event = json.loads(path.read_text())
        assert event["version"] == "2.0"
        assert event["routeKey"] in keys, path.name
        method = event["routeKey"].partition(" ")[0]
        assert event["requestContext"]["http"]["method"] == method
        assert event["requestContext"]["stage"] == "$default"
        match = gateway.match(method, event["rawPath"])
        assert match is not None, path.name
        assert f"{match[0].route.method} {match[0].route.path}" == event["routeKey"]
        assert match[1] == (event.get("pathParameters") or {})
        assert ("authorization" in event["headers"]) == match[0].route.authorized
