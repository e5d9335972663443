"""GET /v1/token over HTTP: the local gateway, the real Lambda authorizer, the API, moto."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from pgbackups_local.gateway import Gateway
from tests.conftest import ROOT, AwsStack

pytestmark = pytest.mark.integration


@pytest.fixture
def deploy_token(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> str:
    """The deploy-time token, in its own secret, as the template's ApiTokenSecret."""
    value = secrets.token_urlsafe(36)
    arn = aws.secretsmanager.create_secret(
        Name=f"{aws.settings.secret_prefix}/api-token", SecretString=value
    )["ARN"]
    monkeypatch.setenv("TOKEN_SECRET_ID", arn)
    return value


@pytest.fixture
def gateway(aws: AwsStack, deploy_token: str) -> Iterator[Gateway]:
    gateway = Gateway(functions_dir=ROOT / "functions").start()
    try:
        yield gateway
    finally:
        gateway.stop()


def send(gateway: Gateway, token: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, f"{gateway.url}{path}", headers=headers, timeout=30, **kwargs)


def test_each_token_is_told_who_it_is_and_never_its_secret(
    gateway: Gateway, deploy_token: str
) -> None:
    created = send(
        gateway,
        deploy_token,
        "POST",
        "/v1/tokens",
        json={"name": "dashboard", "role": "read", "expires_in_days": 30},
    ).json()
    reader = created["token"]

    answer = send(gateway, reader, "GET", "/v1/token")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "name": "dashboard",
        "role": "read",
        "expires_at": created["expires_at"],
    }
    expires_at = datetime.fromisoformat(created["expires_at"])
    created_at = datetime.fromisoformat(created["created_at"])
    assert expires_at - created_at == timedelta(days=30)
    assert reader not in answer.text

    deploy = send(gateway, deploy_token, "GET", "/v1/token")
    assert deploy.json() == {"name": "deploy", "role": "admin", "expires_at": None}


def test_a_refused_token_is_not_told_anything(gateway: Gateway) -> None:
    answer = send(gateway, "pgb_not-a-token", "GET", "/v1/token")
    assert (answer.status_code, answer.json()) == (403, {"message": "Forbidden"})
