"""The databases routes of the HTTP API: registration (real PostgreSQL), listing, changes, removal;
no password in any answer or log line.

Each test loads functions/api.py afresh on its own moto resources, builds its
events from the events/ payloads (changing path, query and body) and checks
what a user would: the status, the JSON body, and what was stored.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pgbackups_local.postgres import EmbeddedPostgres
from tests.integration.api import (
    NOW,
    Api,
    DynamoDBCalls,
    make_backup,
    password_of,
    secret_value,
    table_items,
)

pytestmark = pytest.mark.integration


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
        "verification": {"enabled": False, "every_days": 7, "hour": None, "smoke_queries": []},
        "verification_status": {
            "last_id": None,
            "last_status": None,
            "last_at": None,
            "next_at": None,
            "restore_seconds": None,
        },
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
