"""The local gateway's translation of HTTP to API Gateway payload 2.0 and back.

Stub handlers stand in for functions/api.py and functions/authorizer.py; the
routes and the authorizer come from the real template.yaml. No socket is opened.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from pgbackups_local.gateway import Gateway, _integration_answer
from pgbackups_local.template import load_template

pytestmark = pytest.mark.unit

API = """
import json

def handler(event, context):
    if event["rawPath"].endswith("/boom"):
        raise RuntimeError("boom")
    seen = {"event": event, "function": context.function_name,
            "remaining": context.get_remaining_time_in_millis()}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(seen), "isBase64Encoded": False}
"""

AUTHORIZER = """
CALLS = []

def handler(event, context):
    CALLS.append(event)
    allowed = event["headers"].get("authorization") == "Bearer good"
    return {"isAuthorized": allowed, "context": {"caller": "tester"}}
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    (tmp_path / "api.py").write_text(API)
    (tmp_path / "authorizer.py").write_text(AUTHORIZER)
    return Gateway(functions_dir=tmp_path, template=load_template()).load()


def call(
    gateway: Gateway,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], Any]:
    status, answer_headers, payload = gateway.handle(
        method, target, list((headers or {}).items()), body, "127.0.0.1"
    )
    return status, dict(answer_headers), json.loads(payload) if payload else None


GOOD = {"Authorization": "Bearer good"}


def test_a_request_becomes_a_payload_2_0_event(gateway: Gateway) -> None:
    status, headers, seen = call(
        gateway,
        "GET",
        "/v1/databases/shop/backups?limit=2&status=done&status=error&cursor=",
        GOOD | {"X-Trace": "a", "Cookie": "theme=dark; lang=fr", "User-Agent": "pytest"},
    )

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["apigw-requestid"]
    event = seen["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /v1/databases/{db}/backups"
    assert event["rawPath"] == "/v1/databases/shop/backups"
    assert event["rawQueryString"] == "limit=2&status=done&status=error&cursor="
    assert event["queryStringParameters"] == {"limit": "2", "status": "done,error", "cursor": ""}
    assert event["pathParameters"] == {"db": "shop"}
    assert event["headers"] == {
        "authorization": "Bearer good",
        "x-trace": "a",
        "user-agent": "pytest",
    }
    assert event["cookies"] == ["theme=dark", "lang=fr"]
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/v1/databases/shop/backups",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "pytest",
    }
    assert context["routeKey"] == event["routeKey"]
    assert context["stage"] == "$default"
    assert context["requestId"] == headers["apigw-requestid"]
    assert context["authorizer"] == {"lambda": {"caller": "tester"}}
    assert seen["function"] == "ApiFunction"
    assert 0 < seen["remaining"] <= 30_000


def test_the_authorizer_gets_a_payload_2_0_request(gateway: Gateway) -> None:
    call(gateway, "DELETE", "/v1/databases/shop/backups/01KEZF7CZ87WMWEMMEK3Q551MX", GOOD)

    (request,) = gateway.module("authorizer").CALLS
    assert request["version"] == "2.0"
    assert request["type"] == "REQUEST"
    assert request["identitySource"] == ["Bearer good"]
    assert request["routeKey"] == "DELETE /v1/databases/{db}/backups/{id}"
    assert request["routeArn"].endswith(
        "/$default/DELETE/v1/databases/shop/backups/01KEZF7CZ87WMWEMMEK3Q551MX"
    )
    assert request["pathParameters"] == {"db": "shop", "id": "01KEZF7CZ87WMWEMMEK3Q551MX"}
    assert "authorizer" not in request["requestContext"]


def test_bodies_are_text_or_base64(gateway: Gateway) -> None:
    _, _, text = call(gateway, "POST", "/v1/databases", GOOD, b'{"name": "shop"}')
    assert text["event"]["body"] == '{"name": "shop"}'
    assert text["event"]["isBase64Encoded"] is False

    _, _, binary = call(gateway, "POST", "/v1/databases", GOOD, b"\xff\x00PGDMP")
    assert binary["event"]["isBase64Encoded"] is True
    assert base64.b64decode(binary["event"]["body"]) == b"\xff\x00PGDMP"


def test_api_gateway_answers_without_the_integration(gateway: Gateway) -> None:
    assert call(gateway, "GET", "/v1/databases")[::2] == (401, {"message": "Unauthorized"})
    assert call(gateway, "GET", "/v1/databases", {"Authorization": ""})[0] == 401
    assert call(gateway, "GET", "/v1/databases", {"Authorization": "Bearer bad"})[::2] == (
        403,
        {"message": "Forbidden"},
    )
    assert call(gateway, "GET", "/v1/nothing", GOOD)[::2] == (404, {"message": "Not Found"})
    assert call(gateway, "POST", "/v1/databases/shop", GOOD)[0] == 404  # no such method
    assert call(gateway, "GET", "/v1/databases/shop/boom", GOOD)[0] == 404
    assert call(gateway, "GET", "/v1/databases/boom", GOOD)[::2] == (
        500,
        {"message": "Internal Server Error"},
    )


def test_the_openapi_document_needs_no_token(gateway: Gateway) -> None:
    status, _, seen = call(gateway, "GET", "/v1/openapi.json")

    assert status == 200
    assert seen["event"]["routeKey"] == "GET /v1/openapi.json"
    assert "authorizer" not in seen["event"]["requestContext"]
    assert gateway.module("authorizer").CALLS == []


def test_specific_routes_win_over_variables(gateway: Gateway) -> None:
    found = gateway.match("GET", "/v1/databases/shop/backups/latest/archive")

    assert found is not None
    route, parameters = found
    assert route.route.path == "/v1/databases/{db}/backups/{id}/archive"
    assert parameters == {"db": "shop", "id": "latest"}
    assert gateway.match("GET", "/v1/databases/") is None


def test_integration_answers_become_http() -> None:
    status, headers, body = _integration_answer(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/octet-stream"},
            "cookies": ["a=1", "b=2"],
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
        },
        "rid",
    )
    assert status == 201
    assert body == b"\x00\x01"
    assert ("Set-Cookie", "a=1") in headers
    assert ("Set-Cookie", "b=2") in headers
    assert ("apigw-requestid", "rid") in headers

    # Payload 2.0: anything else is a 200 JSON answer.
    assert _integration_answer({"hello": "world"}, "rid")[::2] == (200, b'{"hello": "world"}')
    assert _integration_answer({"statusCode": 204}, "rid")[::2] == (204, b"")


def unreadable() -> bytes:
    raise AssertionError("the body was read")


def test_the_token_is_checked_before_the_body_is_read(gateway: Gateway) -> None:
    for headers, status in (({}, 401), ({"Authorization": "Bearer bad"}, 403)):
        answer = gateway.handle(
            "POST", "/v1/databases", list(headers.items()), unreadable, "127.0.0.1",
            body_length=50 * 1024 * 1024,
        )  # fmt: skip
        assert answer[0] == status


def test_a_body_over_api_gateways_limit_is_413_without_being_read(gateway: Gateway) -> None:
    status, _, payload = gateway.handle(
        "POST", "/v1/databases", list(GOOD.items()), unreadable, "127.0.0.1",
        body_length=10 * 1024 * 1024 + 1,
    )  # fmt: skip
    assert status == 413
    assert json.loads(payload) == {"message": "Request Too Large"}


def test_a_body_within_the_limit_is_read_once_authorized(gateway: Gateway) -> None:
    status, _, payload = gateway.handle(
        "POST", "/v1/databases", list(GOOD.items()), lambda: b'{"name": "shop"}', "127.0.0.1",
        body_length=16,
    )  # fmt: skip
    assert status == 200
    assert json.loads(json.loads(payload)["event"]["body"]) == {"name": "shop"}
