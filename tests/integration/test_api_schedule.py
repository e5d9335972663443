"""The schedule routes of the HTTP API.

Each test loads functions/api.py afresh on its own moto resources, builds its
events from the events/ payloads (changing path, query and body) and checks
what a user would: the status, the JSON body, and what was stored.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api import Api

pytestmark = pytest.mark.integration


def test_get_and_put_schedule(api: Api, database_name: str, database_url: str) -> None:
    api.register(database_name, database_url)
    path = f"/v1/databases/{database_name}/schedule"

    shown = api.call("api-get-schedule", path)
    assert shown.status == 200
    assert shown.body == {
        "enabled": True,
        "hour": 1,
        "timezone": "Europe/Paris",
        "next_run_at": "2026-01-16T00:00:00Z",
        "error": None,
    }

    moved = api.call(
        "api-put-schedule", path, body={"enabled": True, "hour": 4, "timezone": "America/New_York"}
    )
    assert moved.status == 200
    assert moved.body == {
        "enabled": True,
        "hour": 4,
        "timezone": "America/New_York",
        "next_run_at": "2026-01-16T09:00:00Z",  # 04:00 EST
        "error": None,
    }

    disabled = api.call("api-put-schedule", path, body={"enabled": False})
    assert disabled.body == {
        "enabled": False,
        "hour": 4,
        "timezone": "America/New_York",
        "next_run_at": None,
        "error": None,
    }
    assert api.call("api-get-schedule", path).body == disabled.body
    database = api.call("api-get-database", f"/v1/databases/{database_name}").body
    assert database["schedule"] == disabled.body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"hour": 24}, "hour"),
        ({"hour": "noon"}, "hour"),
        ({"enabled": "maybe"}, "enabled"),
        ({"minute": 30}, "minute"),
    ],
)
def test_put_schedule_rejects_invalid_input_naming_the_field(
    api: Api, database_name: str, database_url: str, body: dict[str, Any], field: str
) -> None:
    api.register(database_name, database_url)

    answer = api.call("api-put-schedule", f"/v1/databases/{database_name}/schedule", body=body)

    assert answer.status == 422
    assert answer.body["error"]["code"] == "invalid_input"
    assert answer.body["error"]["field"] == field
    assert field in answer.body["error"]["message"]


def test_schedule_of_an_unknown_database_is_404(api: Api) -> None:
    answer = api.call("api-put-schedule", "/v1/databases/ghost/schedule", body={"hour": 2})

    assert answer.status == 404
