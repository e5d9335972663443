"""A database's `runner` through the HTTP API, and the runner each backup gets.

The Lambda and Fargate runners are recording stand-ins (neither can run on
moto); the catalog, the API handler and the choice are the real ones.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pgbackups.domain.models import BackupRecord
from tests.conftest import RecordingRunner
from tests.integration.api import NOW, Api

pytestmark = pytest.mark.integration


@pytest.fixture
def fargate(api: Api) -> RecordingRunner:
    runner = RecordingRunner()
    api.services.fargate = runner
    return runner


def finish(client: Api, record: BackupRecord, **changes: Any) -> None:
    running = client.services.catalog.start_backup(
        record.database, record.id, NOW, runner=changes.pop("runner", "lambda"), deadline_at=NOW
    )
    assert running is not None
    assert client.services.catalog.finish_backup(
        running.model_copy(update={"finished_at": NOW, **changes})
    )


def trigger(client: Api, name: str) -> dict[str, Any]:
    answer = client.call("api-create-backup", f"/v1/databases/{name}/backups")
    assert answer.status == 202, answer.body
    return dict(answer.body)


def test_runner_is_auto_by_default_and_can_be_set_and_changed(
    api: Api,
    fargate: RecordingRunner,
    database_url: str,
) -> None:
    assert api.register("shop", database_url).body["runner"] == "auto"
    assert api.register("big", database_url, runner="fargate").body["runner"] == "fargate"
    changed = api.call("api-update-database", "/v1/databases/shop", body={"runner": "lambda"})
    assert changed.status == 200 and changed.body["runner"] == "lambda"
    assert api.call("api-get-database", "/v1/databases/shop").body["runner"] == "lambda"
    bad = api.call("api-update-database", "/v1/databases/shop", body={"runner": "ec2"})
    assert bad.status == 422 and bad.body["error"]["field"] == "runner"


def test_fargate_is_refused_where_the_deployment_has_no_fargate_runner(
    api: Api,
    database_url: str,
) -> None:
    assert api.services.fargate is None  # the test stack has no subnets
    answer = api.call(
        "api-create-database", body={"name": "shop", "url": database_url, "runner": "fargate"}
    )
    assert answer.status == 422 and answer.body["error"]["field"] == "runner"
    assert "DatabaseSubnetIds" in answer.body["error"]["message"]
    assert api.call("api-get-database", "/v1/databases/shop").status == 404
    # `auto` then always takes Lambda.
    api.register("shop", database_url)
    backup = trigger(api, "shop")
    assert api.runner.calls == [("shop", backup["id"])]


def test_each_backup_goes_to_the_runner_its_history_calls_for(
    api: Api,
    fargate: RecordingRunner,
    database_url: str,
) -> None:
    api.register("shop", database_url)
    limit = api.services.settings.backup_timeout_seconds

    first = trigger(api, "shop")  # no history: Lambda
    assert api.runner.calls == [("shop", first["id"])] and fargate.calls == []
    record = api.services.catalog.get_backup("shop", first["id"])
    finish(api, record, status="error", error="timed out")

    second = trigger(api, "shop")  # timed out in Lambda: Fargate
    assert fargate.calls == [("shop", second["id"])]
    record = api.services.catalog.get_backup("shop", second["id"])
    finish(
        api, record, runner="fargate", status="done", size=10, sha256="ab" * 32,
        started_at=NOW - timedelta(seconds=limit * 0.2), database_size=1000,
    )  # fmt: skip

    third = trigger(api, "shop")  # short again: back to Lambda
    assert api.runner.calls[-1] == ("shop", third["id"])
    record = api.services.catalog.get_backup("shop", third["id"])
    finish(
        api, record, status="done", size=10, sha256="ab" * 32,
        started_at=NOW - timedelta(seconds=limit * 0.6), database_size=1000,
    )  # fmt: skip

    fourth = trigger(api, "shop")  # over half of Lambda's limit: Fargate
    assert fargate.calls[-1] == ("shop", fourth["id"])


def test_a_refused_run_task_fails_the_backup_with_ecs_reason_and_releases_the_lock(
    api: Api,
    fargate: RecordingRunner,
    database_url: str,
) -> None:
    from pgbackups.domain.runners import RunnerFailed

    api.register("big", database_url, runner="fargate")
    fargate.error = RunnerFailed("ECS did not start the backup task: RESOURCE:ENI (subnet-a)")
    answer = api.call("api-create-backup", "/v1/databases/big/backups")
    assert answer.status == 503, answer.body
    backups = api.services.catalog.all_backups("big")
    assert [(b.status, b.error) for b in backups] == [
        ("error", "the backup could not be started: ECS did not start the backup task: "
         "RESOURCE:ENI (subnet-a)")
    ]  # fmt: skip
    assert api.services.catalog.get_database("big").active_backup_id is None
