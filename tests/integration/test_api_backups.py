"""The backups routes of the HTTP API: manual backups, listing, archives, deletion, progress.

Each test loads functions/api.py afresh on its own moto resources, builds its
events from the events/ payloads (changing path, query and body) and checks
what a user would: the status, the JSON body, and what was stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from tests.integration.api import NOW, Api, DynamoDBCalls, make_backup

pytestmark = pytest.mark.integration


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
