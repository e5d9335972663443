"""The HTTP API through the real api handler: moto for AWS, real PostgreSQL for registration.

Each test loads functions/api.py afresh on its own moto resources, builds its
events from the events/ payloads (changing path, query and body) and checks
what a user would: the status, the JSON body, and what was stored.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from botocore.exceptions import ClientError

from pgbackups.domain.models import BackupRecord
from pgbackups.services import Services
from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, LambdaContext, RecordingRunner, load_event, load_function

pytestmark = pytest.mark.integration

UNSET: Any = object()
NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)  # a Thursday


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Api:
    module: ModuleType
    runner: RecordingRunner
    aws: AwsStack
    context: LambdaContext

    @property
    def services(self) -> Services:
        return self.module.services  # type: ignore[no-any-return]

    def call(
        self,
        event_name: str,
        path: str | None = None,
        *,
        body: Any = UNSET,
        raw_body: str | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """The handler's answer to events/<event_name>.json with this path, body and query."""
        event = load_event(event_name)
        if path is not None:
            event["rawPath"] = event["requestContext"]["http"]["path"] = path
            event.pop("pathParameters", None)
        # The query is the test's own, never the sample's.
        event["rawQueryString"] = urlencode(query or {})
        event.pop("queryStringParameters", None)
        if query:
            event["queryStringParameters"] = {k: str(v) for k, v in query.items()}
        if body is not UNSET:
            event["body"] = json.dumps(body)
            event["headers"]["content-type"] = "application/json"
        if raw_body is not None:
            event["body"] = raw_body
        event["headers"].update(headers or {})
        response = self.module.handler(event, self.context)
        text = response.get("body")
        return Answer(
            status=response["statusCode"],
            body=json.loads(text) if text else None,
            headers=response.get("headers") or {},
        )

    def register(self, name: str, url: str, **fields: Any) -> Answer:
        answer = self.call("api-create-database", body={"name": name, "url": url, **fields})
        assert answer.status == 201, answer.body
        return answer


@pytest.fixture
def api(aws: AwsStack, lambda_context: LambdaContext) -> Api:
    module = load_function("api")
    runner = RecordingRunner()
    module.services.runner = runner
    module.services.clock = lambda: NOW
    return Api(module, runner, aws, lambda_context)


def make_backup(
    services: Services,
    database: str,
    created_at: datetime,
    *,
    status: str = "done",
    method: str = "periodic",
    size: int = 1234,
) -> BackupRecord:
    """A backup record as the backup function leaves it (`scheduled` → `running` → status)."""
    record = BackupRecord.new(database, method, created_at)  # type: ignore[arg-type]
    services.catalog.create_backup(record)
    if status == "scheduled":
        return record
    running = services.catalog.start_backup(
        database, record.id, created_at, runner="lambda", deadline_at=created_at
    )
    assert running is not None
    if status == "running":
        return running
    finished = running.model_copy(
        update={
            "status": status,
            "finished_at": created_at + timedelta(minutes=1),
            **(
                {"size": size, "sha256": "ab" * 32, "compression": "zstd:3", "source": "primary"}
                if status == "done"
                else {"error": "pg_dump: error: connection refused"}
            ),
        }
    )
    assert services.catalog.finish_backup(finished)
    return finished


def secret_value(aws: AwsStack, database: str) -> dict[str, Any] | None:
    try:
        value = aws.secretsmanager.get_secret_value(
            SecretId=f"{aws.settings.secret_prefix}/databases/{database}"
        )
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return None
    stored = json.loads(value["SecretString"])
    return {"url": stored["url"], "replica_url": stored["replica_url"]}


def table_items(aws: AwsStack) -> list[dict[str, Any]]:
    return aws.dynamodb.scan(TableName=aws.settings.table_name)["Items"]  # type: ignore[no-any-return]


def password_of(url: str) -> str:
    from urllib.parse import unquote, urlsplit

    password = urlsplit(url).password
    assert password
    return unquote(password)


# -- databases ----------------------------------------------------------------------------


def test_register_database_checks_the_url_and_stores_it_in_secrets_manager_only(
    api: Api, database_name: str, database_url: str
) -> None:
    answer = api.call("api-create-database", body={"name": database_name, "url": database_url})

    assert answer.status == 201
    assert answer.body == {
        "name": database_name,
        "schedule": {
            "enabled": True,
            "hour": 1,
            "timezone": "Europe/Paris",
            "next_run_at": "2026-01-16T00:00:00Z",  # 01:00 in Paris
            "error": None,
        },
        "retention": {"daily": 7, "weekly": 4, "monthly": 0, "manual": 10},
        "compression": "zstd:1",
        "runner": "auto",
        "has_replica": False,
        "created_at": "2026-01-15T09:30:00Z",
        "last_backup": None,
        "alerting": {"stale_after_hours": 30, "lag_limit_minutes": 15},
        "health": {"status": "ok", "reasons": [], "since": None},
    }
    assert secret_value(api.aws, database_name) == {"url": database_url, "replica_url": None}
    assert password_of(database_url) not in json.dumps(table_items(api.aws))
    assert "url" not in json.dumps(answer.body).replace("has_replica", "")


def test_register_with_schedule_retention_compression_and_replica(
    api: Api, database_name: str, database_url: str
) -> None:
    answer = api.register(
        database_name,
        database_url,
        replica_url=database_url,
        schedule={"hour": 4, "timezone": "UTC"},
        retention={"daily": 14, "monthly": 3},
        compression="gzip:6",
    )

    assert answer.body["schedule"] == {
        "enabled": True,
        "hour": 4,
        "timezone": "UTC",
        "next_run_at": "2026-01-16T04:00:00Z",
        "error": None,
    }
    assert answer.body["retention"] == {"daily": 14, "weekly": 4, "monthly": 3, "manual": 10}
    assert answer.body["compression"] == "gzip:6"
    assert answer.body["has_replica"] is True
    assert secret_value(api.aws, database_name) == {
        "url": database_url,
        "replica_url": database_url,
    }


def test_register_an_existing_name_is_409_without_connecting(
    api: Api, database_name: str, database_url: str
) -> None:
    api.register(database_name, database_url)

    again = api.call(
        "api-create-database",
        body={"name": database_name, "url": "postgres://nobody@127.0.0.1:1/none"},
    )

    assert again.status == 409
    assert again.body["error"]["code"] == "database_exists"
    assert secret_value(api.aws, database_name) == {"url": database_url, "replica_url": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Shop!", "url": "postgres://u@127.0.0.1/x"}, "name"),
        ({"name": "-shop", "url": "postgres://u@127.0.0.1/x"}, "name"),
        ({"name": "a" * 64, "url": "postgres://u@127.0.0.1/x"}, "name"),
        ({"name": "shop"}, "url"),
        ({"name": "shop", "url": ""}, "url"),
        ({"name": "shop", "url": 42}, "url"),
        ({"name": "shop", "url": "postgres://u@h/x", "schedule": {"timezone": "Mars/Base"}}, "schedule.timezone"),
        ({"name": "shop", "url": "postgres://u@h/x", "schedule": {"hour": 24}}, "schedule.hour"),
        ({"name": "shop", "url": "postgres://u@h/x", "retention": {"daily": 36}}, "retention.daily"),
        ({"name": "shop", "url": "postgres://u@h/x", "retention": {"daily": 0}}, "retention.daily"),
        ({"name": "shop", "url": "postgres://u@h/x", "retention": {"weekly": 53}}, "retention.weekly"),
        ({"name": "shop", "url": "postgres://u@h/x", "retention": {"monthly": 121}}, "retention.monthly"),
        ({"name": "shop", "url": "postgres://u@h/x", "retention": {"manual": 501}}, "retention.manual"),
        ({"name": "shop", "url": "postgres://u@h/x", "compression": "brotli"}, "compression"),
        ({"name": "shop", "url": "postgres://u@h/x", "colour": "blue"}, "colour"),
        ([1, 2], "body"),
    ],
)  # fmt: skip
def test_register_rejects_invalid_input_naming_the_field(api: Api, body: Any, field: str) -> None:
    answer = api.call("api-create-database", body=body)

    assert answer.status == 422
    assert answer.body["error"]["code"] == "invalid_input"
    assert answer.body["error"]["field"] == field
    assert answer.body["error"]["message"].startswith(f"{field}: ")
    assert table_items(api.aws) == []


def test_an_unknown_time_zone_is_named_in_the_message(api: Api) -> None:
    answer = api.call(
        "api-create-database",
        body={"name": "shop", "url": "postgres://u@h/x", "schedule": {"timezone": "Mars/Base"}},
    )

    assert answer.status == 422
    assert "unknown time zone 'Mars/Base'" in answer.body["error"]["message"]


@pytest.mark.parametrize(
    ("raw_body", "content_type"),
    [
        ("{not json", "application/json"),
        ('{"name": "shop",', "application/json"),
        ("name=shop&url=x", "application/x-www-form-urlencoded"),
        ("--x\r\n", "multipart/form-data"),
        ("name: shop", "text/yaml"),
    ],
)
def test_a_body_that_is_not_json_is_400(api: Api, raw_body: str, content_type: str) -> None:
    answer = api.call(
        "api-create-database", raw_body=raw_body, headers={"content-type": content_type}
    )

    assert answer.status == 400
    assert answer.body["error"]["code"] == "malformed_body"


def test_register_refuses_a_url_that_is_not_postgres(api: Api, database_name: str) -> None:
    answer = api.call(
        "api-create-database", body={"name": database_name, "url": "mysql://u:p@127.0.0.1/x"}
    )

    assert answer.status == 422
    assert answer.body["error"] == {
        "code": "connection_failed",
        "message": "url: the URL must start with postgres:// or postgresql://",
        "field": "url",
    }
    assert secret_value(api.aws, database_name) is None
    assert table_items(api.aws) == []


def test_register_with_a_wrong_password_is_422_and_stores_nothing(
    api: Api, postgres: EmbeddedPostgres, database_name: str, database_url: str
) -> None:
    wrong = postgres.url(database_name, password="not-the-password-4c1f")

    answer = api.call("api-create-database", body={"name": database_name, "url": wrong})

    assert answer.status == 422
    error = answer.body["error"]
    assert error["code"] == "connection_failed"
    assert "password authentication failed" in error["message"]
    assert (
        f"postgresql://postgres:***@127.0.0.1:{postgres.port}/{database_name}" in error["message"]
    )
    assert "not-the-password-4c1f" not in json.dumps(answer.body)
    assert secret_value(api.aws, database_name) is None
    assert table_items(api.aws) == []


def test_register_with_an_unreachable_replica_is_422_naming_the_replica(
    api: Api, database_name: str, database_url: str
) -> None:
    answer = api.call(
        "api-create-database",
        body={
            "name": database_name,
            "url": database_url,
            "replica_url": "postgres://u:p@127.0.0.1:1/none",
        },
    )

    assert answer.status == 422
    assert answer.body["error"]["field"] == "replica_url"
    assert answer.body["error"]["message"].startswith("replica_url: cannot connect")
    assert secret_value(api.aws, database_name) is None


def test_nothing_is_stored_when_the_catalog_refuses_the_database(
    api: Api, database_name: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(record: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "PutItem")

    monkeypatch.setattr(api.services.catalog, "create_database", unavailable)

    answer = api.call("api-create-database", body={"name": database_name, "url": database_url})

    assert answer.status == 500
    assert answer.body == {"error": {"code": "internal_error", "message": "internal error"}}
    assert secret_value(api.aws, database_name) is None


def test_the_database_is_withdrawn_when_its_secret_cannot_be_stored(
    api: Api, database_name: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(name: str, info: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "InternalServiceError", "Message": "x"}}, "CreateSecret"
        )

    monkeypatch.setattr(api.services.secrets, "put", unavailable)

    answer = api.call("api-create-database", body={"name": database_name, "url": database_url})

    assert answer.status == 500
    assert api.call("api-list-databases").body == {"databases": []}
    monkeypatch.undo()
    assert api.register(database_name, database_url).status == 201


def test_list_and_get_databases(api: Api, database_name: str, database_url: str) -> None:
    assert api.call("api-list-databases").body == {"databases": []}
    registered = api.register(database_name, database_url).body
    make_backup(api.services, database_name, NOW - timedelta(hours=2))
    newest = make_backup(api.services, database_name, NOW - timedelta(hours=1), status="error")

    listed = api.call("api-list-databases")
    shown = api.call("api-get-database", f"/v1/databases/{database_name}")

    expected = registered | {
        "last_backup": {
            "id": newest.id,
            "status": "error",
            "created_at": "2026-01-15T08:30:00Z",
            "size": None,
        }
    }
    assert listed.status == 200
    assert listed.body == {"databases": [expected]}
    assert shown.status == 200
    assert shown.body == expected


@pytest.mark.parametrize(
    "path",
    [
        "/v1/databases/nowhere",
        "/v1/databases/Shop",
        "/v1/databases/%2e%2e",
        "/v1/databases/shop%00",
        f"/v1/databases/{'a' * 64}",
    ],
)
def test_an_unknown_or_impossible_database_is_404(api: Api, path: str) -> None:
    for event_name in ("api-get-database", "api-delete-database", "api-get-schedule"):
        answer = api.call(
            event_name,
            path.replace("/schedule", "") + ("/schedule" if "schedule" in event_name else ""),
        )
        assert answer.status == 404, (event_name, answer.body)
        assert answer.body["error"]["code"] == "database_not_found"
    for event_name in ("api-list-backups", "api-create-backup"):
        answer = api.call(event_name, f"{path}/backups")
        assert answer.status == 404, (event_name, answer.body)
        assert answer.body["error"]["code"] == "database_not_found"
    for ref in ("01HZZZZZZZZZZZZZZZZZZZZZZZ", "latest"):
        answer = api.call("api-get-backup", f"{path}/backups/{ref}")
        assert answer.status == 404, (ref, answer.body)
        assert answer.body["error"]["code"] == "database_not_found"


def test_an_unknown_backup_of_a_known_database_is_404(api: Api, shop: str) -> None:
    for ref in ("01HZZZZZZZZZZZZZZZZZZZZZZZ", "latest"):
        answer = api.call("api-get-backup", f"/v1/databases/{shop}/backups/{ref}")
        assert answer.status == 404, (ref, answer.body)
        assert answer.body["error"]["code"] == "backup_not_found"


def test_an_unknown_route_is_404_json(api: Api) -> None:
    answer = api.call("api-get-database", "/v1/nothing/here")

    assert answer.status == 404
    assert answer.body == {
        "error": {"code": "not_found", "message": "no route GET /v1/nothing/here"}
    }


def test_patch_merges_schedule_and_retention_and_changes_compression(
    api: Api, database_name: str, database_url: str
) -> None:
    api.register(database_name, database_url, schedule={"hour": 3, "timezone": "UTC"})

    answer = api.call(
        "api-update-database",
        f"/v1/databases/{database_name}",
        body={"schedule": {"hour": 5}, "retention": {"daily": 14}, "compression": "lz4:4"},
    )

    assert answer.status == 200
    assert answer.body["schedule"] == {
        "enabled": True,
        "hour": 5,
        "timezone": "UTC",
        "next_run_at": "2026-01-16T05:00:00Z",
        "error": None,
    }
    assert answer.body["retention"] == {"daily": 14, "weekly": 4, "monthly": 0, "manual": 10}
    assert answer.body["compression"] == "lz4:4"
    assert api.call("api-get-database", f"/v1/databases/{database_name}").body == answer.body


def test_patch_sets_and_removes_the_replica(
    api: Api, database_name: str, database_url: str
) -> None:
    api.register(database_name, database_url)
    path = f"/v1/databases/{database_name}"

    added = api.call("api-update-database", path, body={"replica_url": database_url})
    assert added.status == 200
    assert added.body["has_replica"] is True
    assert secret_value(api.aws, database_name) == {
        "url": database_url,
        "replica_url": database_url,
    }

    kept = api.call("api-update-database", path, body={"retention": {"manual": 3}})
    assert kept.body["has_replica"] is True

    removed = api.call("api-update-database", path, body={"replica_url": None})
    assert removed.status == 200
    assert removed.body["has_replica"] is False
    assert secret_value(api.aws, database_name) == {"url": database_url, "replica_url": None}


def test_patch_checks_a_new_url_before_storing_it(
    api: Api, postgres: EmbeddedPostgres, database_name: str, database_url: str
) -> None:
    api.register(database_name, database_url)
    wrong = postgres.url(database_name, password="wrong-password-77")

    answer = api.call("api-update-database", f"/v1/databases/{database_name}", body={"url": wrong})

    assert answer.status == 422
    assert answer.body["error"]["code"] == "connection_failed"
    assert answer.body["error"]["field"] == "url"
    assert secret_value(api.aws, database_name) == {"url": database_url, "replica_url": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"retention": {"daily": 99}}, "retention.daily"),
        ({"schedule": {"timezone": "Nowhere/Land"}}, "schedule.timezone"),
        ({"schedule": {"hour": -1}}, "schedule.hour"),
        ({"compression": "zstd:99"}, "compression"),
        ({"name": "renamed"}, "name"),
    ],
)
def test_patch_rejects_invalid_input_naming_the_field(
    api: Api, database_name: str, database_url: str, body: dict[str, Any], field: str
) -> None:
    api.register(database_name, database_url)

    answer = api.call("api-update-database", f"/v1/databases/{database_name}", body=body)

    assert answer.status == 422
    assert answer.body["error"]["field"] == field


def test_patch_an_unknown_database_is_404(api: Api) -> None:
    answer = api.call("api-update-database", "/v1/databases/ghost", body={"compression": "none"})

    assert answer.status == 404
    assert answer.body["error"]["code"] == "database_not_found"


def test_delete_database_stops_its_schedule_and_forgets_its_urls(
    api: Api, database_name: str, database_url: str
) -> None:
    api.register(database_name, database_url)
    backup = make_backup(api.services, database_name, NOW - timedelta(days=1))
    path = f"/v1/databases/{database_name}"

    deleted = api.call("api-delete-database", path)

    assert deleted.status == 204
    assert deleted.body is None
    assert api.call("api-get-database", path).status == 404
    assert api.call("api-list-databases").body == {"databases": []}
    assert api.call("api-delete-database", path).status == 404
    assert secret_value(api.aws, database_name) is None
    removed = api.services.catalog.get_database(database_name, include_removed=True)
    assert removed.removed_at is not None
    assert removed.schedule.enabled is False
    # Its backups stay, to expire under its last policy: still listed, shown, downloadable.
    listed = api.call("api-list-backups", f"{path}/backups")
    assert [b["id"] for b in listed.body["backups"]] == [backup.id]
    assert api.call("api-get-backup", f"{path}/backups/{backup.id}").status == 200
    # ...but it takes no new backup.
    refused = api.call("api-create-backup", f"{path}/backups")
    assert refused.status == 404
    assert api.runner.calls == []


def test_a_removed_database_can_be_registered_again(
    api: Api, database_name: str, database_url: str
) -> None:
    api.register(database_name, database_url)
    api.call("api-delete-database", f"/v1/databases/{database_name}")

    again = api.call("api-create-database", body={"name": database_name, "url": database_url})

    assert again.status == 201
    assert secret_value(api.aws, database_name) == {"url": database_url, "replica_url": None}


# -- schedule -------------------------------------------------------------------------------


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


# -- backups --------------------------------------------------------------------------------


@pytest.fixture
def shop(api: Api, database_name: str, database_url: str) -> str:
    api.register(database_name, database_url)
    return database_name


def test_manual_backup_is_202_scheduled_then_409_with_the_active_id(api: Api, shop: str) -> None:
    path = f"/v1/databases/{shop}/backups"

    first = api.call("api-create-backup", path)

    assert first.status == 202
    backup = first.body
    assert backup["status"] == "scheduled"
    assert backup["method"] == "manual"
    assert backup["database"] == shop
    assert backup["created_at"] == "2026-01-15T09:30:00Z"
    assert backup["name"] == f"20260115093000_{shop}"
    assert backup["kept_as"] is None
    assert api.runner.calls == [(shop, backup["id"])]
    assert api.services.catalog.get_backup(shop, backup["id"]).status == "scheduled"

    second = api.call("api-create-backup", path)

    assert second.status == 409
    assert second.body["error"]["code"] == "backup_in_progress"
    assert second.body["error"]["backup_id"] == backup["id"]
    assert backup["id"] in second.body["error"]["message"]
    assert api.runner.calls == [(shop, backup["id"])]


def test_a_failed_invoke_records_an_error_and_releases_the_lock(api: Api, shop: str) -> None:
    path = f"/v1/databases/{shop}/backups"
    api.runner.error = ClientError(
        {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "Invoke"
    )

    failed = api.call("api-create-backup", path)

    assert failed.status == 503
    error = failed.body["error"]
    assert error["code"] == "backup_not_started"
    record = api.services.catalog.get_backup(shop, error["backup_id"])
    assert record.status == "error"
    assert record.error == "the backup function could not be started (ClientError)"

    api.runner.error = None
    api.services.clock = lambda: NOW + timedelta(seconds=5)
    retried = api.call("api-create-backup", path)
    assert retried.status == 202
    assert api.runner.calls == [(shop, retried.body["id"])]


def test_list_backups_pages_newest_first_with_a_cursor(api: Api, shop: str) -> None:
    created = [
        make_backup(
            api.services,
            shop,
            NOW - timedelta(hours=n),
            status="error" if n % 3 == 0 else "done",
            method="manual" if n % 2 else "periodic",
        )
        for n in range(1, 8)
    ]
    newest_first = [record.id for record in created]  # n=1 is the newest
    path = f"/v1/databases/{shop}/backups"

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        answer = api.call(
            "api-list-backups", path, query={"limit": 3} | ({"cursor": cursor} if cursor else {})
        )
        assert answer.status == 200
        seen += [backup["id"] for backup in answer.body["backups"]]
        cursor = answer.body["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert seen == newest_first
    assert pages == 3

    default = api.call("api-list-backups", path, query={})
    assert [b["id"] for b in default.body["backups"]] == newest_first
    assert default.body["next_cursor"] is None

    errors = api.call("api-list-backups", path, query={"status": "error"})
    assert [b["id"] for b in errors.body["backups"]] == [
        r.id for r in created if r.status == "error"
    ]
    manual_done = api.call("api-list-backups", path, query={"method": "manual", "status": "done"})
    assert [b["id"] for b in manual_done.body["backups"]] == [
        r.id for r in created if r.method == "manual" and r.status == "done"
    ]


def test_listed_backups_carry_why_retention_keeps_them(api: Api, shop: str) -> None:
    periodic = make_backup(api.services, shop, NOW - timedelta(hours=3))
    manual = make_backup(api.services, shop, NOW - timedelta(hours=2), method="manual")
    failed = make_backup(api.services, shop, NOW - timedelta(hours=1), status="error")

    answer = api.call("api-list-backups", f"/v1/databases/{shop}/backups")

    kept_as = {backup["id"]: backup["kept_as"] for backup in answer.body["backups"]}
    assert kept_as == {periodic.id: "daily", manual.id: "manual", failed.id: None}
    shown = api.call("api-get-backup", f"/v1/databases/{shop}/backups/{periodic.id}")
    assert shown.body["kept_as"] == "daily"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJhZnRlciI6ICJ4In0"}, "cursor"),  # {"after": "x"}
        ({"status": "finished"}, "status"),
        ({"method": "cron"}, "method"),
    ],
)
def test_list_backups_rejects_invalid_queries(
    api: Api, shop: str, query: dict[str, Any], field: str
) -> None:
    answer = api.call("api-list-backups", f"/v1/databases/{shop}/backups", query=query)

    assert answer.status == 422
    assert answer.body["error"]["code"] == "invalid_input"
    assert answer.body["error"]["field"] == field


def test_get_backup_by_id_and_latest(api: Api, shop: str) -> None:
    path = f"/v1/databases/{shop}/backups"
    none_yet = api.call("api-get-backup", f"{path}/latest")
    assert none_yet.status == 404
    assert none_yet.body["error"] == {
        "code": "backup_not_found",
        "message": f"{shop} has no successful backup yet",
    }

    older = make_backup(api.services, shop, NOW - timedelta(hours=3))
    done = make_backup(api.services, shop, NOW - timedelta(hours=2), size=4096)
    make_backup(api.services, shop, NOW - timedelta(hours=1), status="error")

    latest = api.call("api-get-backup", f"{path}/latest")
    assert latest.status == 200
    assert latest.body == json.loads(done.model_dump_json()) | {
        "kept_as": "daily",
        "uploaded": None,
    }

    by_id = api.call("api-get-backup", f"{path}/{older.id}")
    assert by_id.status == 200
    assert by_id.body["id"] == older.id
    assert by_id.body["status"] == "done"


@pytest.mark.parametrize(
    "backup_id",
    ["01KEZF7CZ87WMWEMMEK3Q551MX", "not-a-ulid", "01kezf7cz87wmwemmek3q551mx", "LATEST", "%2e%2e"],
)
def test_an_unknown_or_impossible_backup_is_404(api: Api, shop: str, backup_id: str) -> None:
    path = f"/v1/databases/{shop}/backups/{backup_id}"
    for event_name, event_path in (
        ("api-get-backup", path),
        ("api-delete-backup", path),
        ("api-get-backup-archive", f"{path}/archive"),
    ):
        answer = api.call(event_name, event_path)
        assert answer.status == 404, (event_name, answer.body)
        assert answer.body["error"]["code"] == "backup_not_found"


def test_latest_cannot_be_deleted(api: Api, shop: str) -> None:
    make_backup(api.services, shop, NOW - timedelta(hours=1))

    answer = api.call("api-delete-backup", f"/v1/databases/{shop}/backups/latest")

    assert answer.status == 404
    assert len(api.services.catalog.all_backups(shop)) == 1


def test_archive_is_409_until_done_then_a_presigned_url_that_downloads(api: Api, shop: str) -> None:
    record = make_backup(api.services, shop, NOW - timedelta(minutes=5), status="scheduled")
    path = f"/v1/databases/{shop}/backups/{record.id}/archive"

    not_done = api.call("api-get-backup-archive", path)
    assert not_done.status == 409
    assert not_done.body["error"]["code"] == "backup_not_done"
    assert not_done.body["error"]["backup_id"] == record.id

    archive = b"PGDMP\x01\x10\x00 a tiny archive"
    api.aws.s3.put_object(Bucket=api.aws.settings.bucket_name, Key=record.object_key, Body=archive)
    started = api.services.catalog.start_backup(
        shop, record.id, NOW, runner="lambda", deadline_at=NOW
    )
    assert started is not None
    assert api.services.catalog.finish_backup(
        started.model_copy(
            update={"status": "done", "finished_at": NOW, "size": len(archive), "sha256": "cd" * 32}
        )
    )

    before = datetime.now(UTC)
    answer = api.call("api-get-backup-archive", path, query={"expires_in": 600})

    assert answer.status == 200
    link = answer.body
    assert link["filename"] == f"{record.name}.pgsql"
    assert link["size"] == len(archive)
    assert link["sha256"] == "cd" * 32
    expires_at = datetime.fromisoformat(link["expires_at"])
    assert before + timedelta(seconds=590) < expires_at < datetime.now(UTC) + timedelta(seconds=610)
    download = requests.get(link["download_url"], timeout=10)
    assert download.status_code == 200
    assert download.content == archive
    assert download.headers["Content-Disposition"] == f'attachment; filename="{record.name}.pgsql"'

    latest = api.call("api-get-backup-archive", f"/v1/databases/{shop}/backups/latest/archive")
    assert latest.status == 200
    assert latest.body["filename"] == link["filename"]


@pytest.mark.parametrize("expires_in", [0, 3601, "soon"])
def test_archive_lifetime_is_bounded(api: Api, shop: str, expires_in: Any) -> None:
    record = make_backup(api.services, shop, NOW - timedelta(hours=1))

    answer = api.call(
        "api-get-backup-archive",
        f"/v1/databases/{shop}/backups/{record.id}/archive",
        query={"expires_in": expires_in},
    )

    assert answer.status == 422
    assert answer.body["error"]["field"] == "expires_in"


def test_delete_backup_is_409_while_running_and_204_once_finished(api: Api, shop: str) -> None:
    running = make_backup(api.services, shop, NOW - timedelta(minutes=5), status="running")
    path = f"/v1/databases/{shop}/backups/{running.id}"

    refused = api.call("api-delete-backup", path)
    assert refused.status == 409
    assert refused.body["error"]["code"] == "conflict"
    assert "running" in refused.body["error"]["message"]

    bucket = api.aws.settings.bucket_name
    api.aws.s3.put_object(Bucket=bucket, Key=running.object_key, Body=b"PGDMP...")
    assert api.services.catalog.finish_backup(
        running.model_copy(update={"status": "done", "finished_at": NOW, "size": 8})
    )

    deleted = api.call("api-delete-backup", path)
    assert deleted.status == 204
    assert deleted.body is None
    assert api.call("api-get-backup", path).status == 404
    assert api.aws.s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert api.call("api-delete-backup", path).status == 404


# -- secrets stay secret ----------------------------------------------------------------------


def test_no_answer_and_no_log_line_contains_a_password(
    api: Api,
    logs: io.StringIO,
    capsys: pytest.CaptureFixture[str],
    postgres: EmbeddedPostgres,
    database_name: str,
    database_url: str,
) -> None:
    wrong = postgres.url(database_name, password="w0ng-Pa55word-x91")
    path = f"/v1/databases/{database_name}"
    answers = [
        api.call("api-create-database", body={"name": database_name, "url": wrong}),
        api.call("api-create-database", body={"name": database_name, "url": database_url}),
        api.call("api-update-database", path, body={"replica_url": database_url}),
        api.call("api-update-database", path, body={"url": wrong}),
        api.call("api-update-database", path, body={"replica_url": wrong}),
        api.call("api-get-database", path),
        api.call("api-list-databases"),
        api.call("api-delete-database", path),
    ]

    assert [answer.status for answer in answers] == [422, 201, 200, 422, 422, 200, 200, 204]
    captured = capsys.readouterr()
    written = logs.getvalue() + captured.out + captured.err
    assert '"database registered"' in written  # the logs were captured indeed
    for secret in (password_of(database_url), "w0ng-Pa55word-x91"):
        assert secret not in written
        for answer in answers:
            assert secret not in json.dumps(answer.body)


class DynamoDBCalls:
    """Counts the catalog's DynamoDB calls by operation, and the items its queries read."""

    def __init__(self, services: Services) -> None:
        self.operations: list[str] = []
        self.items_queried = 0
        events = services.catalog._db.meta.events  # type: ignore[attr-defined]
        events.register("after-call.dynamodb", self._after_call)

    def _after_call(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.operations.append(model.name)
        if model.name == "Query":
            self.items_queried += parsed.get("Count", 0)

    def reset(self) -> None:
        self.operations.clear()
        self.items_queried = 0


def test_listing_databases_takes_the_same_calls_for_one_or_many(
    api: Api, database_name: str, database_url: str
) -> None:
    calls = DynamoDBCalls(api.services)
    counts = []
    for n in range(3):
        name = f"{database_name}-{n}"
        api.register(name, database_url)
        make_backup(api.services, name, NOW - timedelta(hours=1))
        calls.reset()
        listed = api.call("api-list-databases")
        assert [db["last_backup"] is not None for db in listed.body["databases"]] == [True] * (
            n + 1
        )
        counts.append(sorted(calls.operations))
    # One query of the databases and one batched read of their newest backups.
    assert counts == [["BatchGetItem", "Query"]] * 3


def test_a_deleted_newest_backup_makes_the_next_one_the_last(api: Api, shop: str) -> None:
    older = make_backup(api.services, shop, NOW - timedelta(hours=2))
    newest = make_backup(api.services, shop, NOW - timedelta(hours=1))
    deleted = api.call("api-delete-backup", f"/v1/databases/{shop}/backups/{newest.id}")
    assert deleted.status == 204

    shown = api.call("api-get-database", f"/v1/databases/{shop}")
    assert shown.body["last_backup"]["id"] == older.id


def test_showing_a_backup_reads_only_the_backups_newer_than_it(api: Api, shop: str) -> None:
    for hours in range(10, 4, -1):
        make_backup(api.services, shop, NOW - timedelta(hours=hours))
    shown = make_backup(api.services, shop, NOW - timedelta(hours=2), method="manual")
    make_backup(api.services, shop, NOW - timedelta(hours=1))
    calls = DynamoDBCalls(api.services)

    answer = api.call("api-get-backup", f"/v1/databases/{shop}/backups/{shown.id}")

    assert answer.status == 200 and answer.body["kept_as"] == "manual"
    assert calls.items_queried == 2  # itself and the newer one, not the six older


def test_polling_a_backup_on_its_way_reads_its_record_only(api: Api, shop: str) -> None:
    for hours in range(5, 1, -1):
        make_backup(api.services, shop, NOW - timedelta(hours=hours))
    running = make_backup(api.services, shop, NOW - timedelta(minutes=1), status="running")
    dynamodb = DynamoDBCalls(api.services)
    s3_calls: list[str] = []
    s3_events = api.services.archives._s3.meta.events  # type: ignore[attr-defined]
    s3_events.register("after-call.s3", lambda model, **_: s3_calls.append(model.name))

    answer = api.call("api-get-backup", f"/v1/databases/{shop}/backups/{running.id}")

    assert answer.status == 200 and answer.body["status"] == "running"
    assert answer.body["kept_as"] is None
    # One read whatever the history and however often a client polls: retention is only
    # ever about done backups, and a running backup records its own progress.
    assert dynamodb.operations == ["GetItem"]
    assert s3_calls == []


def test_a_running_backup_shows_how_much_is_uploaded(api: Api, shop: str) -> None:
    done = make_backup(api.services, shop, NOW - timedelta(minutes=2), status="done")
    running = make_backup(api.services, shop, NOW - timedelta(minutes=1), status="running")
    path = f"/v1/databases/{shop}/backups/{running.id}"
    assert api.call("api-get-backup", path).body["uploaded"] is None  # nothing uploaded yet

    # What the backup records as its parts reach S3 (pgbackups.usecases.backup.UploadProgress).
    api.services.catalog.record_upload_progress(shop, running.id, 5 * 1024 * 1024 + 1234)
    answer = api.call("api-get-backup", path)
    assert answer.status == 200
    assert answer.body["uploaded"] == 5 * 1024 * 1024 + 1234

    # Only while running: a late report does not reach a done backup.
    api.services.catalog.record_upload_progress(shop, done.id, 42)
    shown = api.call("api-get-backup", f"/v1/databases/{shop}/backups/{done.id}").body
    assert shown["status"] == "done" and shown["uploaded"] is None
