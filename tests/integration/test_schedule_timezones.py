"""Time zones through the API: canonical names on write, and one database whose stored
zone the runtime no longer knows shows why without breaking any other read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pgbackups.domain.models import DatabaseRecord, Schedule
from tests.conftest import AwsStack, LambdaContext, load_event, load_function
from tests.integration.test_dispatch import store_timezone

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


class Api:
    def __init__(self, lambda_context: LambdaContext) -> None:
        self.module = load_function("api")
        self.module.services.clock = lambda: NOW
        self.context = lambda_context

    def call(self, event_name: str, path: str, body: Any = None) -> tuple[int, Any]:
        event = load_event(event_name)
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event.pop("pathParameters", None)
        event["rawQueryString"] = ""
        event.pop("queryStringParameters", None)
        if body is not None:
            event["body"] = json.dumps(body)
            event["headers"]["content-type"] = "application/json"
        response = self.module.handler(event, self.context)
        return response["statusCode"], json.loads(response["body"] or "null")


@pytest.fixture
def api(aws: AwsStack, lambda_context: LambdaContext) -> Api:
    api = Api(lambda_context)
    for name in ("shop", "blog"):
        api.module.services.catalog.create_database(
            DatabaseRecord(name=name, schedule=Schedule(hour=3), created_at=NOW)
        )
    return api


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("US/Pacific", "America/Los_Angeles"),
        ("America/Godthab", "America/Nuuk"),
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("Etc/UTC", "UTC"),
        ("Europe/Paris", "Europe/Paris"),
    ],
)
def test_a_time_zone_alias_is_stored_under_its_canonical_name(
    api: Api, given: str, stored: str
) -> None:
    status, body = api.call("api-put-schedule", "/v1/databases/shop/schedule", {"timezone": given})

    assert (status, body["timezone"]) == (200, stored)
    assert api.module.services.catalog.get_database("shop").schedule.timezone == stored


@pytest.mark.parametrize("given", ["Etc/GMT+5", "EST5EDT", "US/Pacific-New", "Mars/Base"])
def test_a_time_zone_with_no_canonical_name_is_refused_and_nothing_changes(
    api: Api, given: str
) -> None:
    status, body = api.call("api-put-schedule", "/v1/databases/shop/schedule", {"timezone": given})

    assert status == 422
    assert body["error"]["code"] == "invalid_input"
    assert given in body["error"]["message"]
    assert api.module.services.catalog.get_database("shop").schedule.timezone == "Europe/Paris"


def test_a_stored_time_zone_the_runtime_does_not_know_fails_that_database_only(
    aws: AwsStack, api: Api
) -> None:
    store_timezone(aws, "blog", "US/Pacific-New")

    status, body = api.call("api-list-databases", "/v1/databases")

    assert status == 200
    schedules = {d["name"]: d["schedule"] for d in body["databases"]}
    assert schedules["shop"]["next_run_at"] == "2026-01-16T02:00:00Z"
    assert schedules["shop"]["error"] is None
    assert schedules["blog"]["next_run_at"] is None
    assert "'US/Pacific-New' is not known" in schedules["blog"]["error"]
    assert api.call("api-get-database", "/v1/databases/blog")[1]["schedule"] == schedules["blog"]
    assert api.call("api-list-backups", "/v1/databases/blog/backups")[0] == 200

    status, body = api.call(
        "api-put-schedule", "/v1/databases/blog/schedule", {"timezone": "US/Pacific"}
    )
    assert (status, body["timezone"], body["error"]) == (200, "America/Los_Angeles", None)
    assert body["next_run_at"] == "2026-01-15T11:00:00Z"  # 03:00 PST
