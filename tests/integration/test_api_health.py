"""Health where people look through the API: each database carries `health` (as the
dispatcher last judged it) and the `alerting` thresholds it is judged by."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pgbackups.usecases.dispatch import dispatch
from tests.conftest import AwsStack, LambdaContext, RecordingRunner, load_function
from tests.integration.api import NOW, Api, make_backup

pytestmark = pytest.mark.integration

OK = {"status": "ok", "reasons": [], "since": None}


@pytest.fixture
def api(aws: AwsStack, lambda_context: LambdaContext) -> Api:
    module = load_function("api")
    runner = RecordingRunner()
    module.services.runner = runner
    module.services.clock = lambda: NOW
    return Api(module, runner, aws, lambda_context)


def test_a_database_carries_its_alerting_thresholds_and_is_ok_until_judged(
    api: Api, database_name: str, database_url: str
) -> None:
    registered = api.register(database_name, database_url).body
    assert registered["alerting"] == {"stale_after_hours": 30, "lag_limit_minutes": 15}
    assert registered["health"] == OK

    changed = api.call(
        "api-update-database",
        f"/v1/databases/{database_name}",
        body={"alerting": {"stale_after_hours": 50}},
    )
    assert changed.status == 200, changed.body
    assert changed.body["alerting"] == {"stale_after_hours": 50, "lag_limit_minutes": 15}
    changed = api.call(
        "api-update-database",
        f"/v1/databases/{database_name}",
        body={"alerting": {"lag_limit_minutes": 5}},
    )
    assert changed.body["alerting"] == {"stale_after_hours": 50, "lag_limit_minutes": 5}
    for bad in ({"stale_after_hours": "50"}, {"stale_after_hours": 0}, {"lag": 3}):
        refused = api.call(
            "api-update-database", f"/v1/databases/{database_name}", body={"alerting": bad}
        )
        assert refused.status == 422, bad
        assert refused.body["error"]["field"].startswith("alerting"), refused.body
    shown = api.call("api-get-database", f"/v1/databases/{database_name}").body
    assert shown["alerting"] == {"stale_after_hours": 50, "lag_limit_minutes": 5}


def test_a_failing_database_shows_why_in_the_list_and_alone(
    api: Api, database_name: str, database_url: str
) -> None:
    api.register(database_name, database_url, alerting={"stale_after_hours": 48})
    make_backup(api.services, database_name, NOW - timedelta(hours=2))
    make_backup(api.services, database_name, NOW - timedelta(hours=1), status="error")

    dispatch(api.services, NOW)

    shown = api.call("api-get-database", f"/v1/databases/{database_name}").body
    [listed] = api.call("api-list-databases").body["databases"]
    assert listed == shown
    assert shown["health"] == {
        "status": "failing",
        "reasons": [
            {
                "code": "backup_failed",
                "severity": "failing",
                "message": "The last backup failed: pg_dump: error: connection refused. "
                "Check that the database is reachable with its registered URL, then "
                "trigger a manual backup.",
                "since": "2026-01-15T08:31:00Z",
            }
        ],
        "since": "2026-01-15T09:30:00Z",
    }

    make_backup(api.services, database_name, NOW)
    dispatch(api.services, NOW + timedelta(minutes=5))
    health = api.call("api-get-database", f"/v1/databases/{database_name}").body["health"]
    assert (health["status"], health["reasons"]) == ("ok", [])
