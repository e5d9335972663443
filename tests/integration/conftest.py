"""The api handler loaded afresh on this test's moto resources, and a database registered on it."""

from __future__ import annotations

import pytest

from tests.conftest import AwsStack, LambdaContext, RecordingRunner, load_function
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
