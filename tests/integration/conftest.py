"""The api handler loaded afresh on this test's moto resources, and a database registered on it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from pgbackups_local.gateway import Gateway
from tests.conftest import ROOT, AwsStack, LambdaContext, RecordingRunner, load_function
from tests.integration.api import NOW, Api


@pytest.fixture
def api(aws: AwsStack, lambda_context: LambdaContext) -> Api:
    module = load_function("api")
    runner = RecordingRunner()
    module.services.runner = runner
    module.services.clock = lambda: NOW
    return Api(module, runner, aws, lambda_context)


@pytest.fixture
def shop(api: Api, database_name: str, database_url: str) -> str:
    api.register(database_name, database_url)
    return database_name


@pytest.fixture
def deploy_token(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> str:
    """The deploy-time token (the admin named "deploy"), in its own secret, as the
    template's ApiTokenSecret."""
    value = secrets.token_urlsafe(36)
    arn = aws.secretsmanager.create_secret(
        Name=f"{aws.settings.secret_prefix}/api-token", SecretString=value
    )["ARN"]
    monkeypatch.setenv("TOKEN_SECRET_ID", arn)
    return value


@pytest.fixture
def gateway(aws: AwsStack, deploy_token: str) -> Iterator[Gateway]:
    """The local API Gateway with the template's routes and authorizer, on these resources."""
    gateway = Gateway(functions_dir=ROOT / "functions").start()
    gateway.module("api").services.runner = RecordingRunner()
    try:
        yield gateway
    finally:
        gateway.stop()
