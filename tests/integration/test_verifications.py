"""Restore drills as a resource: through the real api function, the Fargate task's code
(`run_verification`), the dispatcher, moto for AWS, real PostgreSQL 18 and 15 sources
drilled with their own major's server."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pgbackups.domain.models import BackupRequest, to_rfc3339
from pgbackups.domain.verifications import DRILL_PHASES
from pgbackups.usecases import pitr
from pgbackups.usecases.dispatch import dispatch
from pgbackups.usecases.verifications import run_verification
from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, LambdaContext, api_event, load_function
from tests.integration.test_restores import SOURCE_SQL

pytestmark = pytest.mark.integration

PG15 = Path(os.environ.get("PGBACKUPS_PG15_DIR", "/usr/lib/postgresql/15"))
PG18 = Path("/var/cache/pgbackups/postgresql-18")  # the CLI's cache of the 18 wheel

ROWS = {("public", "items"): 500, ("public", "orders"): 800, ("audit", "log"): 1}


@pytest.fixture(scope="module")
def server_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `postgresql-<major>/` as the task's layers do: the built layers'
    servers when `make` points at them, else the CLI's 18 and Debian's 15."""
    from pgbackups.postgres.servers import ServerNotFound, server_dirs, server_install

    folder = tmp_path_factory.mktemp("servers")
    for major, fallback in ((18, PG18), (15, PG15)):
        try:
            install = server_install(major, server_dirs())
        except ServerNotFound:
            if major == 18 and not (PG18 / "bin" / "postgres").exists():
                from pgbackups_cli.pitr import server_binaries

                server_binaries(18)
            install = fallback
        (folder / f"postgresql-{major}").symlink_to(install)
    return folder


class Stack:
    """The api function and the backup function on this test's moto resources. Backups
    run in the backup function; drills go to the Fargate runner, which records them for
    `run_drills` to run with the Fargate task's code."""

    def __init__(self, aws: AwsStack, context: LambdaContext, server_dirs: Path) -> None:
        self.aws = aws
        self.context = context
        self.api: ModuleType = load_function("api")
        self.backup: ModuleType = load_function("backup")
        self.lambda_requests: list[BackupRequest] = []
        self.drills: list[BackupRequest] = []
        self.api.services.runner = _Recorder(self.lambda_requests, "lambda")
        self.api.services.fargate = _Recorder(self.drills, "fargate")
        self.backup.services.runner = self.api.services.runner
        self.task = dataclasses.replace(
            self.backup.services,
            settings=dataclasses.replace(self.backup.services.settings, server_dirs=(server_dirs,)),
        )

    @property
    def services(self) -> Any:
        return self.api.services

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = self.api.handler(api_event(method, path, body), self.context)
        text = response.get("body") or ""
        return response["statusCode"], json.loads(text) if text else None

    def backed_up(self, name: str, url: str) -> str:
        status, body = self.call("POST", "/v1/databases", {"name": name, "url": url})
        assert status == 201, body
        status, body = self.call("POST", f"/v1/databases/{name}/backups")
        assert status == 202, body
        request = self.lambda_requests.pop()
        result = self.backup.handler(request.model_dump(), self.context)
        assert result["status"] == "done", result
        return str(body["id"])

    def run_drills(self) -> list[str]:
        statuses = []
        while self.drills:
            request = self.drills.pop(0)
            record = run_verification(self.task, request, seconds_left=600, runner="fargate")
            assert record is not None
            statuses.append(record.status)
        return statuses

    def drilled(self, database: str, **fields: Any) -> dict[str, Any]:
        status, body = self.call("POST", f"/v1/databases/{database}/verifications", fields)
        assert status == 202, body
        assert body["status"] == "scheduled"
        self.run_drills()
        status, shown = self.call("GET", f"/v1/databases/{database}/verifications/{body['id']}")
        assert status == 200
        return shown  # type: ignore[no-any-return]


class _Recorder:
    def __init__(self, into: list[BackupRequest], name: str) -> None:
        self.into = into
        self.name = name

    def start(self, request: BackupRequest) -> None:
        self.into.append(request)


@pytest.fixture
def stack(aws: AwsStack, lambda_context: LambdaContext, server_dirs: Path) -> Stack:
    return Stack(aws, lambda_context, server_dirs)


@pytest.fixture
def source(postgres: EmbeddedPostgres, database_name: str) -> str:
    url = postgres.create_database(database_name)
    postgres.psql(SOURCE_SQL, database_name)
    return url


def report_of(stack: Stack, drill: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    body = stack.aws.s3.get_object(Bucket=stack.aws.settings.bucket_name, Key=drill["report_key"])
    data = body["Body"].read()
    return data, json.loads(data)


@pytest.mark.parametrize("major", [18, 15])
def test_a_healthy_backups_drill_passes_with_its_row_counts_and_report(
    stack: Stack,
    postgres: EmbeddedPostgres,
    postgres15: EmbeddedPostgres,
    database_name: str,
    major: int,
) -> None:
    server = postgres if major == 18 else postgres15
    url = server.create_database(database_name)
    server.psql(SOURCE_SQL, database_name)
    backup_id = stack.backed_up("shop", url)

    status, body = stack.call("POST", "/v1/databases/shop/verifications", {})
    assert status == 202, body
    [request] = stack.drills
    assert (request.kind, request.backup_id, request.server_major) == ("verify", body["id"], major)
    assert stack.run_drills() == ["passed"]
    _, drill = stack.call("GET", f"/v1/databases/shop/verifications/{body['id']}")

    assert drill["status"] == "passed", drill
    assert drill["backup_id"] == backup_id and drill["kind"] == "backup"
    assert drill["runner"] == "fargate" and drill["error"] is None
    assert drill["server_version"].startswith(f"{major}.")
    assert drill["source_version"].startswith(f"{major}.")
    names = [check["name"] for check in drill["checks"]]
    assert {"restore", "objects", "amcheck", "row_counts"} <= set(names)
    assert all(check["passed"] for check in drill["checks"]), drill["checks"]
    assert (drill["tables"], drill["rows"]) == (3, 1301)
    assert drill["restore_seconds"] > 0
    # Each phase's time and each check's, kept through the table and in the report.
    assert set(drill["phases"]) == {*DRILL_PHASES, "total"}
    assert sum(drill["phases"][name] for name in DRILL_PHASES) == pytest.approx(
        drill["phases"]["total"], abs=0.01
    )
    assert drill["phases"]["restore"] == drill["restore_seconds"] == drill["checks"][0]["seconds"]
    assert all(check["seconds"] > 0 for check in drill["checks"]), drill["checks"]
    # The evidence: beside the backup, with the digest the record holds.
    assert drill["report_key"] == (
        f"databases/shop/backups/{backup_id}.verification-{drill['id']}.json"
    )
    data, report = report_of(stack, drill)
    assert hashlib.sha256(data).hexdigest() == drill["report_sha256"]
    assert {(t["schema"], t["table"]): t["rows"] for t in report["tables"]} == ROWS
    assert [c["name"] for c in report["checks"]] == names
    assert report["verification"]["phases"] == drill["phases"]
    assert [c["seconds"] for c in report["checks"]] == [c["seconds"] for c in drill["checks"]]
    status, link = stack.call("GET", f"/v1/databases/shop/verifications/{drill['id']}/report")
    assert status == 200 and link["url"].startswith("http")
    # The backup and the database say so.
    _, backup = stack.call("GET", f"/v1/databases/shop/backups/{backup_id}")
    assert backup["verification"] == "passed" and backup["verified_at"] is not None
    _, database = stack.call("GET", "/v1/databases/shop")
    assert database["verification_status"]["last_id"] == drill["id"]
    assert database["verification_status"]["last_status"] == "passed"
    assert database["verification_status"]["restore_seconds"] == drill["restore_seconds"]
    events = [e for e in stack.aws.received_events() if e["detail-type"].startswith("Verif")]
    assert [(e["detail-type"], e["detail"]["verification_id"]) for e in events] == [
        ("Verification Passed", drill["id"])
    ]
    _, page = stack.call("GET", "/v1/databases/shop/verifications")
    assert [v["id"] for v in page["verifications"]] == [drill["id"]]


def test_an_archive_replaced_by_another_databases_fails_its_drill(
    stack: Stack, postgres: EmbeddedPostgres, source: str, database_name: str
) -> None:
    backup_id = stack.backed_up("shop", source)
    other = postgres.create_database(f"other_{database_name}")
    postgres.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1);", f"other_{database_name}")
    other_id = stack.backed_up("other", other)
    bucket = stack.aws.settings.bucket_name
    stack.aws.s3.copy_object(
        Bucket=bucket,
        Key=f"databases/shop/backups/{backup_id}.pgsql",
        CopySource={"Bucket": bucket, "Key": f"databases/other/backups/{other_id}.pgsql"},
    )

    drill = stack.drilled("shop", backup_id=backup_id)

    assert drill["status"] == "failed"
    assert "does not match its recorded SHA-256" in drill["error"]
    _, backup = stack.call("GET", f"/v1/databases/shop/backups/{backup_id}")
    assert backup["verification"] == "failed"
    [event] = [e for e in stack.aws.received_events() if e["detail-type"].startswith("Verif")]
    assert event["detail-type"] == "Verification Failed"
    assert event["detail"]["backup_id"] == backup_id
    _, database = stack.call("GET", "/v1/databases/shop")
    assert database["verification_status"]["last_status"] == "failed"


def test_a_truncated_archive_fails_its_drill_and_the_next_one_may_run(
    stack: Stack, source: str
) -> None:
    backup_id = stack.backed_up("shop", source)
    bucket, key = stack.aws.settings.bucket_name, f"databases/shop/backups/{backup_id}.pgsql"
    whole = stack.aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    stack.aws.s3.put_object(Bucket=bucket, Key=key, Body=whole[: len(whole) // 2])

    drill = stack.drilled("shop")

    assert drill["status"] == "failed" and drill["error"]
    # The lock is free: another drill may be asked for at once.
    status, body = stack.call("POST", "/v1/databases/shop/verifications", {})
    assert status == 202, body


def test_one_drill_at_a_time_per_database(stack: Stack, source: str) -> None:
    stack.backed_up("shop", source)
    status, first = stack.call("POST", "/v1/databases/shop/verifications", {})
    assert status == 202

    status, body = stack.call("POST", "/v1/databases/shop/verifications", {})

    assert status == 409
    assert body["error"]["code"] == "verification_in_progress"
    assert body["error"]["verification_id"] == first["id"]


def test_drills_need_the_fargate_runner_and_a_done_backup(stack: Stack, source: str) -> None:
    status, body = stack.call("POST", "/v1/databases", {"name": "shop", "url": source})
    assert status == 201
    status, body = stack.call("POST", "/v1/databases/shop/verifications", {})
    assert (status, body["error"]["code"]) == (404, "backup_not_found")
    stack.services.fargate = None
    status, body = stack.call("POST", "/v1/databases/shop/verifications", {})
    assert (status, body["error"]["code"]) == (422, "not_supported")
    assert "Fargate" in body["error"]["message"]
    status, body = stack.call("PATCH", "/v1/databases/shop", {"verification": {"enabled": True}})
    assert (status, body["error"]["code"]) == (422, "invalid_input")
    assert stack.aws.object_keys() == []


def test_a_backup_and_a_point_in_time_at_once_are_refused(stack: Stack, source: str) -> None:
    stack.backed_up("shop", source)
    status, body = stack.call(
        "POST",
        "/v1/databases/shop/verifications",
        {"backup_id": "latest", "target_time": "2026-01-15T09:00:00Z"},
    )
    assert (status, body["error"]["code"]) == (422, "invalid_input")
    assert stack.drills == []


def test_the_drill_settings_are_checked_and_shown(stack: Stack, source: str) -> None:
    stack.call("POST", "/v1/databases", {"name": "shop", "url": source})
    for bad in (
        {"hour": 24},
        {"every_days": 0},
        {"enabled": "yes"},
        {"smoke_queries": [{"sql": "SELECT 1", "expect": "about right"}]},
        {"smoke_queries": [{"sql": "SELECT 1", "expect": "rows >= 1"}] * 11},
    ):
        status, body = stack.call("PATCH", "/v1/databases/shop", {"verification": bad})
        assert status == 422, (bad, body)

    query = {"sql": "SELECT count(*) FROM items", "expect": "value = 500"}
    status, body = stack.call(
        "PATCH",
        "/v1/databases/shop",
        {"verification": {"enabled": True, "hour": 4, "smoke_queries": [query]}},
    )

    assert status == 200, body
    assert body["verification"] == {
        "enabled": True,
        "every_days": 7,
        "hour": 4,
        "smoke_queries": [query],
    }
    assert body["verification_status"]["last_id"] is None
    assert body["verification_status"]["next_at"] is not None
    _, again = stack.call("PATCH", "/v1/databases/shop", {"verification": {"every_days": 3}})
    assert again["verification"]["hour"] == 4 and again["verification"]["every_days"] == 3


def test_the_dispatcher_starts_a_due_drill_once_and_reaps_a_silent_one(
    stack: Stack, source: str
) -> None:
    stack.backed_up("shop", source)
    status, body = stack.call(
        "PATCH",
        "/v1/databases/shop",
        {"verification": {"enabled": True, "hour": 4}, "schedule": {"timezone": "UTC"}},
    )
    assert status == 200, body
    due = body["verification_status"]["next_at"]
    services = stack.services

    at = datetime.fromisoformat(due.replace("Z", "+00:00"))

    assert dispatch(services, at - timedelta(hours=1)).verifications == []
    report = dispatch(services, at + timedelta(minutes=1))
    [started] = report.verifications
    assert dispatch(services, at + timedelta(minutes=2)).verifications == []  # one at a time
    [request] = stack.drills
    assert request.backup_id == started.id and request.kind == "verify"

    # Its task never started: given up after the grace, the lock freed.
    services.clock = lambda: started.created_at + timedelta(hours=1)
    report = dispatch(services, at + timedelta(hours=1))
    [reaped] = report.reaped_verifications
    assert reaped.status == "failed" and "never started" in (reaped.error or "")
    _, database = stack.call("GET", "/v1/databases/shop")
    assert database["verification_status"]["last_status"] == "failed"
    assert database["verification_status"]["next_at"] is not None


@pytest.fixture(autouse=True)
def _no_leftover_drill_folders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The drills of this test leave no work folder (only theirs: other runs on the
    machine make their own)."""
    import tempfile

    made: list[Path] = []
    mkdtemp = tempfile.mkdtemp

    def recording(*args: Any, **kwargs: Any) -> str:
        folder = mkdtemp(*args, **kwargs)
        made.append(Path(folder))
        return folder

    monkeypatch.setattr(tempfile, "mkdtemp", recording)
    yield
    left = [f for f in made if f.name.startswith("pgbackups-drill-") and f.exists()]
    assert not left, f"a drill left its work folder behind: {left}"


def test_the_databases_smoke_queries_are_run_and_a_failed_one_is_named(
    stack: Stack, source: str
) -> None:
    stack.backed_up("shop", source)
    queries = [
        {"sql": "SELECT count(*) FROM items", "expect": "value = 500"},
        {"sql": "SELECT * FROM orders WHERE qty > 100", "expect": "rows >= 1"},
    ]
    status, body = stack.call(
        "PATCH", "/v1/databases/shop", {"verification": {"smoke_queries": queries}}
    )
    assert status == 200, body

    drill = stack.drilled("shop")

    assert drill["status"] == "failed"
    checks = {check["name"]: check["passed"] for check in drill["checks"]}
    assert checks["smoke 1"] is True and checks["smoke 2"] is False
    assert "smoke 2" in drill["error"]
    [event] = [e for e in stack.aws.received_events() if e["detail-type"].startswith("Verif")]
    assert event["detail"]["failed_checks"] == ["smoke 2"]
    _, report = report_of(stack, drill)
    assert report["smoke_queries"] == queries


# -- drills of a point in time ---------------------------------------------------------------


@pytest.fixture
def pitr_stack(aws: AwsStack, lambda_context: LambdaContext) -> Any:
    from tests.integration.test_pitr_restores import Fargate
    from tests.integration.test_restores import Stack as RestoreStack

    stack = RestoreStack(aws, lambda_context)
    stack.api.services.fargate = Fargate()
    return stack


def run_pitr_drill(pitr_stack: Any, server_dirs: Path, **fields: Any) -> dict[str, Any]:
    from tests.integration.test_pitr_restores import task_services

    status, body = pitr_stack.call("POST", "/v1/databases/shop/verifications", fields)
    assert status == 202, body
    assert body["kind"] == "point_in_time"
    (request,) = pitr_stack.api.services.fargate.requests
    assert (request.kind, request.backup_id) == ("verify", body["id"])
    record = run_verification(
        task_services(pitr_stack, server_dirs), request, seconds_left=900, runner="fargate"
    )
    assert record is not None
    status, drill = pitr_stack.call("GET", f"/v1/databases/shop/verifications/{body['id']}")
    assert status == 200
    return drill  # type: ignore[no-any-return]


@pytest.mark.parametrize("major", ["18", "15"])
def test_a_point_in_time_drill_inside_the_window_passes_with_the_rows_before_it(
    pitr_stack: Any, server_dirs: Path, major: str
) -> None:
    from tests.integration.test_pitr import start_server
    from tests.integration.test_pitr_restores import with_continuous_backups

    server = start_server(major)
    try:
        times = with_continuous_backups(pitr_stack, server)
    finally:
        server.destroy()  # a drill never connects to the source

    drill = run_pitr_drill(pitr_stack, server_dirs, target_time=to_rfc3339(times[1]))

    assert drill["status"] == "passed", drill
    assert drill["server_version"].startswith(f"{major}.")
    assert drill["source_version"].startswith(f"{major}.")
    assert drill["target_time"] is not None
    assert (drill["tables"], drill["rows"]) == (1, 2)  # events: the two rows before it
    names = [check["name"] for check in drill["checks"]]
    assert names[0] == "restore" and {"amcheck", "row_counts"} <= set(names)
    # Its restore is the recovery, the server's start included.
    assert set(drill["phases"]) == {"restore", "checks", "stop", "total"}
    assert drill["phases"]["restore"] + drill["phases"]["checks"] + drill["phases"][
        "stop"
    ] == pytest.approx(drill["phases"]["total"], abs=0.01)
    assert drill["phases"]["restore"] == drill["restore_seconds"] == drill["checks"][0]["seconds"]
    assert "/pitr/" in drill["report_key"] and drill["report_key"].endswith(
        f".verification-{drill['id']}.json"
    )
    data, report = report_of(pitr_stack, drill)
    assert hashlib.sha256(data).hexdigest() == drill["report_sha256"]
    assert report["point_in_time"]["base_backup_id"] == drill["backup_id"]
    assert report["tables"] == [{"schema": "public", "table": "events", "rows": 2}]
    _, database = pitr_stack.call("GET", "/v1/databases/shop")
    assert database["verification_status"]["last_status"] == "passed"


def test_a_point_in_time_drill_with_a_wal_file_missing_fails_naming_it(
    pitr_stack: Any, server_dirs: Path
) -> None:
    from tests.integration.test_pitr import start_server
    from tests.integration.test_pitr_restores import with_continuous_backups

    server = start_server("18")
    try:
        with_continuous_backups(pitr_stack, server)
    finally:
        server.destroy()
    plan = pitr.plan_restore(pitr_stack.api.services, "shop", None)
    lost = plan.wal[-1]
    pitr_stack.aws.s3.delete_object(Bucket=pitr_stack.aws.settings.bucket_name, Key=lost.key)

    drill = run_pitr_drill(pitr_stack, server_dirs, target_time="latest")

    assert drill["status"] == "failed"
    [restore] = drill["checks"]
    assert restore["name"] == "restore" and not restore["passed"]
    assert lost.name in restore["detail"] and lost.name in drill["error"]
    [event] = [e for e in pitr_stack.aws.received_events() if e["detail-type"].startswith("Verif")]
    assert event["detail-type"] == "Verification Failed"
    assert event["detail"]["failed_checks"] == ["restore"]


def test_a_point_in_time_outside_the_window_is_refused(pitr_stack: Any, server_dirs: Path) -> None:
    from tests.integration.test_pitr import start_server
    from tests.integration.test_pitr_restores import with_continuous_backups

    server = start_server("18")
    try:
        with_continuous_backups(pitr_stack, server)
    finally:
        server.destroy()

    status, body = pitr_stack.call(
        "POST", "/v1/databases/shop/verifications", {"target_time": "2001-01-01T00:00:00Z"}
    )

    assert status == 422, body
    assert body["error"]["code"] == "outside_recovery_window"
    assert pitr_stack.api.services.fargate.requests == []


def test_the_dispatcher_follows_a_backup_drill_with_a_random_point_in_time(
    pitr_stack: Any, server_dirs: Path
) -> None:
    from tests.integration.test_pitr import start_server
    from tests.integration.test_pitr_restores import task_services, with_continuous_backups

    server = start_server("18")
    try:
        with_continuous_backups(pitr_stack, server)
        status, body = pitr_stack.call("POST", "/v1/databases/shop/backups")
        assert status == 202, body
        [result] = pitr_stack.run_requests()
        assert result["status"] == "done", result
    finally:
        server.destroy()
    status, body = pitr_stack.call(
        "PATCH",
        "/v1/databases/shop",
        {"verification": {"enabled": True}, "schedule": {"timezone": "UTC"}},
    )
    assert status == 200, body
    at = datetime.fromisoformat(body["verification_status"]["next_at"].replace("Z", "+00:00"))
    services = pitr_stack.api.services
    fargate = services.fargate
    task = task_services(pitr_stack, server_dirs)

    [backup_drill] = dispatch(services, at).verifications
    assert backup_drill.kind == "backup"
    run_verification(task, fargate.requests.pop(), seconds_left=900, runner="fargate")
    [point_drill] = dispatch(services, at + timedelta(hours=1)).verifications
    assert point_drill.kind == "point_in_time"
    run_verification(task, fargate.requests.pop(), seconds_left=900, runner="fargate")
    assert dispatch(services, at + timedelta(hours=2)).verifications == []

    _, page = pitr_stack.call("GET", "/v1/databases/shop/verifications")
    drills = {v["kind"]: v for v in page["verifications"]}
    assert drills["backup"]["status"] == "passed", drills["backup"]
    assert drills["point_in_time"]["status"] == "passed", drills["point_in_time"]
    _, window = pitr_stack.call("GET", "/v1/databases/shop/pitr")
    newest = window["recoverable_ranges"][-1]
    moment = drills["point_in_time"]["target_time"]
    assert parse(newest["from"]) <= parse(moment) <= parse(newest["to"])


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Alerts:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)


def test_a_failed_drill_alerts_once_and_its_recovery_once(stack: Stack, source: str) -> None:
    from pgbackups.usecases.health import refresh_database_health

    backup_id = stack.backed_up("shop", source)
    bucket = stack.aws.settings.bucket_name
    key = f"databases/shop/backups/{backup_id}.pgsql"
    stack.aws.s3.put_object(Bucket=bucket, Key=key, Body=b"PGDMP not quite an archive")
    assert stack.drilled("shop")["status"] == "failed"
    alerts = Alerts()
    stack.services.alerts = alerts

    change = refresh_database_health(stack.services, "shop")
    refresh_database_health(stack.services, "shop")  # the same incident: no second message

    assert change is not None and change.health.status == "failing"
    assert [r.code for r in change.health.reasons] == ["verification_failed"]
    [raised] = alerts.sent
    assert raised.kind == "raised" and "restore drill failed" in raised.subject

    # A new backup, drilled: the incident is over.
    status, body = stack.call("POST", "/v1/databases/shop/backups")
    assert status == 202, body
    request = stack.lambda_requests.pop()
    assert stack.backup.handler(request.model_dump(), stack.context)["status"] == "done"
    assert stack.drilled("shop")["status"] == "passed"
    change = refresh_database_health(stack.services, "shop")
    assert change is not None and change.health.status == "ok"
    [_, cleared] = alerts.sent
    assert cleared.kind == "cleared" and "restore drill failed" in cleared.subject


def test_a_drills_report_goes_with_its_backup(stack: Stack, source: str) -> None:
    backup_id = stack.backed_up("shop", source)
    drill = stack.drilled("shop")
    assert drill["report_key"] in stack.aws.object_keys()

    status, _ = stack.call("DELETE", f"/v1/databases/shop/backups/{backup_id}")

    assert status == 204
    assert stack.aws.object_keys() == []
    status, body = stack.call("GET", f"/v1/databases/shop/verifications/{drill['id']}/report")
    assert (status, body["error"]["code"]) == (409, "conflict")
    status, kept = stack.call("GET", f"/v1/databases/shop/verifications/{drill['id']}")
    assert status == 200 and kept["status"] == "passed"  # the history stays


def test_null_drill_settings_change_nothing_but_the_hour(stack: Stack, source: str) -> None:
    stack.call("POST", "/v1/databases", {"name": "shop", "url": source})
    query = {"sql": "SELECT 1", "expect": "rows = 1"}
    status, body = stack.call(
        "PATCH",
        "/v1/databases/shop",
        {"verification": {"enabled": True, "hour": 5, "smoke_queries": [query]}},
    )
    assert status == 200, body

    status, body = stack.call(
        "PATCH",
        "/v1/databases/shop",
        {"verification": {"enabled": None, "smoke_queries": None, "hour": None}},
    )

    assert status == 200, body
    assert body["verification"] == {
        "enabled": True,
        "every_days": 7,
        "hour": None,
        "smoke_queries": [query],
    }
