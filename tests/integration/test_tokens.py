"""Tokens with roles over HTTP: the local gateway, the real Lambda authorizer, the API, moto."""

from __future__ import annotations

import io
import json
import secrets
from datetime import timedelta
from typing import Any

import pytest
import requests

from pgbackups.domain.access import Role
from pgbackups.domain.models import utcnow
from pgbackups.services import Services
from pgbackups.usecases.tokens import create_token
from pgbackups_local.gateway import Gateway
from tests.conftest import AwsStack, LambdaContext, load_event, load_function

pytestmark = pytest.mark.integration


def send(gateway: Gateway, token: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, f"{gateway.url}{path}", headers=headers, timeout=30, **kwargs)


def new_token(gateway: Gateway, admin: str, name: str, role: str, **more: Any) -> str:
    answer = send(gateway, admin, "POST", "/v1/tokens", json={"name": name, "role": role, **more})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def all_items(aws: AwsStack) -> list[dict[str, Any]]:
    return aws.dynamodb.scan(TableName=aws.settings.table_name)["Items"]


def test_each_role_does_what_it_may_and_is_told_what_it_needs(
    gateway: Gateway, deploy_token: str
) -> None:
    reader = new_token(gateway, deploy_token, "dashboard", "read")
    operator = new_token(gateway, deploy_token, "ci", "operate")

    assert send(gateway, reader, "GET", "/v1/databases").status_code == 200
    refused = send(gateway, reader, "POST", "/v1/databases/shop/backups")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert refused.json()["error"]["required_role"] == "operate"

    # operate passes the role check (then: no such database).
    assert send(gateway, operator, "POST", "/v1/databases/shop/backups").status_code == 404
    refused = send(gateway, operator, "DELETE", "/v1/databases/shop")
    assert (refused.status_code, refused.json()["error"]["required_role"]) == (403, "admin")
    refused = send(gateway, operator, "POST", "/v1/tokens", json={"name": "x", "role": "admin"})
    assert refused.status_code == 403

    listed = send(gateway, deploy_token, "GET", "/v1/tokens").json()["tokens"]
    assert [(t["name"], t["role"]) for t in listed] == [("ci", "operate"), ("dashboard", "read")]
    assert all(t["last_used_at"] is not None for t in listed)
    assert all("token" not in t for t in listed)


def test_a_revoked_token_is_refused_by_the_authorizer(gateway: Gateway, deploy_token: str) -> None:
    token = new_token(gateway, deploy_token, "laptop", "read")
    assert send(gateway, token, "GET", "/v1/databases").status_code == 200

    assert send(gateway, deploy_token, "DELETE", "/v1/tokens/laptop").status_code == 204

    refused = send(gateway, token, "GET", "/v1/databases")
    assert (refused.status_code, refused.json()) == (403, {"message": "Forbidden"})
    again = send(gateway, deploy_token, "DELETE", "/v1/tokens/laptop")
    assert (again.status_code, again.json()["error"]["code"]) == (404, "token_not_found")


def test_names_are_unique_and_checked(gateway: Gateway, deploy_token: str) -> None:
    new_token(gateway, deploy_token, "ci", "read")
    taken = send(gateway, deploy_token, "POST", "/v1/tokens", json={"name": "ci", "role": "read"})
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "token_exists")
    for body in (
        {"name": "deploy", "role": "read"},
        {"name": "Bad Name", "role": "read"},
        {"name": "ok", "role": "root"},
        {"name": "ok", "role": "read", "expires_in_days": 0},
        {"name": "ok", "role": "read", "expires_in_days": "7"},
    ):
        answer = send(gateway, deploy_token, "POST", "/v1/tokens", json=body)
        assert answer.status_code == 422, body
    assert [
        t["name"] for t in send(gateway, deploy_token, "GET", "/v1/tokens").json()["tokens"]
    ] == ["ci"]


# -- the authorizer function itself ------------------------------------------------------------


def authorize(module: Any, authorization: str) -> Any:
    event = load_event("authorizer")
    event["headers"]["authorization"] = authorization
    event["identitySource"] = [authorization]
    return module.handler(event, LambdaContext())


def test_the_authorizer_tells_the_api_who_and_what_role(
    services: Services, deploy_token: str
) -> None:
    issued = create_token(services, "ci", Role.OPERATE)
    authorizer = load_function("authorizer")

    assert authorize(authorizer, f"Bearer {issued.secret}") == {
        "isAuthorized": True,
        "context": {"token": "ci", "role": "operate"},
    }
    assert authorize(authorizer, f"Bearer {deploy_token}") == {
        "isAuthorized": True,
        "context": {"token": "deploy", "role": "admin"},
    }


def test_the_authorizer_refuses_expired_altered_and_unknown_tokens(
    services: Services, deploy_token: str
) -> None:
    services.clock = lambda: utcnow() - timedelta(days=3)
    expired = create_token(services, "old", Role.ADMIN, expires_in_days=2).secret
    services.clock = utcnow
    valid = create_token(services, "new", Role.READ, expires_in_days=2).secret
    authorizer = load_function("authorizer")

    assert authorize(authorizer, f"Bearer {valid}")["isAuthorized"] is True
    for offered in (
        expired,
        valid[:-1] + ("A" if valid[-1] != "A" else "B"),  # its id, another secret
        expired.replace(expired.split("_")[1], valid.split("_")[1]),  # another id
        "pgb_01KB3ZQ4Y6M7T2N8S0F1E9V5AA_" + secrets.token_urlsafe(32),  # no such id
        deploy_token + "x",
    ):
        assert authorize(authorizer, f"Bearer {offered}") == {"isAuthorized": False}

    entries = services.audit.entries(newest_first=False)
    assert [(e.token, e.status, e.route) for e in entries] == [
        ("old", 403, "GET /v1/databases"),  # expired: its name is known
        ("-", 403, "GET /v1/databases"),  # a wrong secret claims nothing
        ("-", 403, "GET /v1/databases"),
        ("-", 403, "GET /v1/databases"),
        ("-", 403, "GET /v1/databases"),
    ]


def test_token_secrets_are_only_in_the_answer_that_created_them(
    gateway: Gateway,
    aws: AwsStack,
    deploy_token: str,
    logs: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    created = send(
        gateway, deploy_token, "POST", "/v1/tokens", json={"name": "ci", "role": "operate"}
    )
    secret = created.json()["token"]
    send(gateway, secret, "GET", "/v1/databases")
    send(gateway, secret, "DELETE", "/v1/databases/shop")  # refused, audited
    send(gateway, secret + "x", "GET", "/v1/databases")  # refused by the authorizer, audited
    listed = send(gateway, deploy_token, "GET", "/v1/tokens")
    audit = send(gateway, deploy_token, "GET", "/v1/audit")
    send(gateway, deploy_token, "DELETE", "/v1/tokens/ci")

    random_part = secret.split("_", 2)[2]
    captured = capsys.readouterr()
    elsewhere = {
        "table": json.dumps(all_items(aws)),
        "logs": logs.getvalue() + captured.out + captured.err,
        "listing": listed.text,
        "audit": audit.text,
    }
    for where, text in elsewhere.items():
        assert random_part not in text, where
        assert deploy_token not in text, where
    assert len(json.loads(audit.text)["entries"]) >= 3
