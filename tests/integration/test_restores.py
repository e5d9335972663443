"""Restores run by the stack: through the real api and backup functions, moto for AWS,
real PostgreSQL 18 and 15 targets.

A restore is compared the way PostgreSQL's pg_upgrade test compares clusters: the
plain pg_dump of the source and of the target are identical.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg2
import pytest

from pgbackups.domain.models import BackupRequest
from pgbackups.postgres.pgtools import PgTools
from pgbackups.usecases.backup import DEADLINE_MARGIN_SECONDS
from pgbackups.usecases.dispatch import dispatch
from pgbackups.usecases.restores import run_restore
from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, LambdaContext, api_event, load_function

pytestmark = pytest.mark.integration

PG15 = Path(os.environ.get("PGBACKUPS_PG15_DIR", "/usr/lib/postgresql/15"))

SOURCE_SQL = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;
CREATE TABLE orders (id int PRIMARY KEY, item_id int REFERENCES items, qty int);
INSERT INTO orders SELECT g, 1 + g % 500, g % 7 FROM generate_series(1, 800) g;
CREATE INDEX orders_item ON orders (item_id);
CREATE SCHEMA audit;
CREATE TABLE audit.log (at timestamptz DEFAULT now(), what text);
INSERT INTO audit.log (what) VALUES ('created');
CREATE VIEW big_orders AS SELECT * FROM orders WHERE qty > 3;
"""


@pytest.fixture(scope="module")
def postgres15() -> Iterator[EmbeddedPostgres]:
    """Debian's PostgreSQL 15: older than pg_restore 18, as most targets out there."""
    if not (PG15 / "bin" / "postgres").exists():
        pytest.fail(f"Debian's PostgreSQL 15 is not in {PG15} (apt-get install postgresql-15)")
    server = EmbeddedPostgres(name="pg15", install=PG15).init().start()
    try:
        yield server
    finally:
        server.destroy()


class Stack:
    """The api function and the backup function on this test's moto resources; the
    backups' runner records the requests, which `run_requests` hands the backup function."""

    def __init__(self, aws: AwsStack, context: LambdaContext) -> None:
        self.aws = aws
        self.context = context
        self.api: ModuleType = load_function("api")
        self.backup: ModuleType = load_function("backup")
        self.requests: list[BackupRequest] = []
        self.api.services.runner = self
        self.api.services.fargate = None
        self.backup.services.runner = self
        self.answers: list[str] = []  # every API response body, for the leak scan

    name = "lambda"

    def start(self, request: BackupRequest) -> None:
        self.requests.append(request)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = self.api.handler(api_event(method, path, body), self.context)
        text = response.get("body") or ""
        self.answers.append(text)
        return response["statusCode"], json.loads(text) if text else None

    def run_requests(self) -> list[dict[str, Any]]:
        results = []
        while self.requests:
            request = self.requests.pop(0)
            results.append(self.backup.handler(request.model_dump(), self.context))
        return results

    def backed_up(self, name: str, url: str) -> str:
        status, body = self.call("POST", "/v1/databases", {"name": name, "url": url})
        assert status == 201, body
        status, body = self.call("POST", f"/v1/databases/{name}/backups")
        assert status == 202, body
        (result,) = self.run_requests()
        assert result["status"] == "done", result
        return str(body["id"])

    def restore(self, database: str, **fields: Any) -> tuple[int, Any]:
        return self.call("POST", f"/v1/databases/{database}/restores", fields)

    def restored(self, database: str, **fields: Any) -> dict[str, Any]:
        status, body = self.restore(database, **fields)
        assert status == 202, body
        assert body["status"] == "scheduled"
        (result,) = self.run_requests()
        assert result == {"restore_id": body["id"], "kind": "restore", "status": "done"}
        status, shown = self.call("GET", f"/v1/databases/{database}/restores/{body['id']}")
        assert status == 200
        return shown  # type: ignore[no-any-return]

    def restore_secrets(self) -> list[str]:
        listing = self.aws.secretsmanager.list_secrets(
            Filters=[{"Key": "name", "Values": [f"{self.aws.settings.secret_prefix}/restores/"]}]
        )
        return [secret["Name"] for secret in listing["SecretList"]]


@pytest.fixture
def stack(aws: AwsStack, lambda_context: LambdaContext) -> Stack:
    return Stack(aws, lambda_context)


def plain_dump(server: EmbeddedPostgres, database: str, tools: PgTools) -> str:
    """pg_dump's plain SQL of a database, as pg_upgrade's test compares clusters."""
    result = subprocess.run(
        [
            tools.program("pg_dump"), "--no-owner", "--no-privileges", "--no-comments",
            "--exclude-schema", "information_schema", f"--dbname={server.url(database)}",
        ],
        env=tools.environment(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    # The \restrict key is random per run (pg_dump 18): not a difference.
    return "\n".join(line for line in result.stdout.splitlines() if not line.startswith(VARIES))


VARIES = ("\\restrict", "\\unrestrict")


@pytest.fixture
def source(postgres: EmbeddedPostgres, database_name: str) -> str:
    url = postgres.create_database(database_name)
    postgres.psql(SOURCE_SQL, database_name)
    return url


@pytest.mark.parametrize("major", [18, 15])
def test_a_backup_restored_by_the_stack_matches_its_source(
    stack: Stack,
    postgres: EmbeddedPostgres,
    postgres15: EmbeddedPostgres,
    database_name: str,
    pgtools_dir: Path,
    major: int,
) -> None:
    # Source and target on one server: their dumps compare line for line.
    server = postgres if major == 18 else postgres15
    source = server.create_database(database_name)
    server.psql(SOURCE_SQL, database_name)
    backup_id = stack.backed_up("shop", source)
    target_url = server.create_database(f"target_{database_name}")

    restore = stack.restored("shop", backup_id="latest", target_url=target_url)

    tools = PgTools(pgtools_dir)
    assert plain_dump(server, f"target_{database_name}", tools) == plain_dump(
        server, database_name, tools
    )
    assert restore["backup_id"] == backup_id
    assert restore["kind"] == "backup"
    assert restore["target"] == f"127.0.0.1:{server.port}/target_{database_name}"
    assert restore["runner"] == "lambda"
    assert restore["error"] is None
    assert restore["progress"]["restored"] > 0
    assert restore["progress"]["restored"] == restore["progress"]["total"]
    assert restore["duration_seconds"] >= 0
    if major == 15:  # pg_restore 18's transaction_timeout, which 15 does not know
        assert any("transaction_timeout" in warning for warning in restore["warnings"])
    else:
        assert restore["warnings"] == []
    assert stack.restore_secrets() == []
    status, page = stack.call("GET", "/v1/databases/shop/restores")
    assert status == 200
    assert [r["id"] for r in page["restores"]] == [restore["id"]]
    events = [e for e in stack.aws.received_events() if e["detail-type"].startswith("Restore")]
    assert [(e["detail-type"], e["detail"]["id"]) for e in events] == [
        ("Restore Succeeded", restore["id"])
    ]


def test_selected_tables_only(
    stack: Stack, source: str, postgres: EmbeddedPostgres, database_name: str
) -> None:
    stack.backed_up("shop", source)
    target = f"target_{database_name}"
    target_url = postgres.create_database(target)

    restore = stack.restored("shop", backup_id="latest", target_url=target_url, tables=["items"])

    assert restore["tables"] == ["items"]
    assert postgres.psql("SELECT count(*) FROM items", target) == "500"
    assert postgres.psql("SELECT to_regclass('public.orders') IS NULL", target) == "t"
    assert postgres.psql("SELECT to_regclass('audit.log') IS NULL", target) == "t"


def test_in_place_needs_the_database_name_as_confirmation(
    stack: Stack, source: str, postgres: EmbeddedPostgres, database_name: str
) -> None:
    stack.backed_up("shop", source)
    postgres.psql("DELETE FROM orders; INSERT INTO items VALUES (9999, 'new')", database_name)
    # The same host, port and database, written another way.
    same = source + "?application_name=elsewhere"

    status, body = stack.restore("shop", backup_id="latest", target_url=same)
    assert status == 409
    assert body["error"]["code"] == "confirmation_required"
    status, body = stack.restore("shop", backup_id="latest", target_url=same, confirm="other")
    assert status == 409
    assert postgres.psql("SELECT count(*) FROM orders", database_name) == "0"
    assert stack.restore_secrets() == []

    stack.restored("shop", backup_id="latest", target_url=same, confirm="shop")

    assert postgres.psql("SELECT count(*) FROM orders", database_name) == "800"
    assert postgres.psql("SELECT count(*) FROM items WHERE id = 9999", database_name) == "0"


def test_a_target_refused_changes_nothing_and_leaves_no_secret(
    stack: Stack, source: str, postgres: EmbeddedPostgres, database_name: str
) -> None:
    stack.backed_up("shop", source)
    target = f"target_{database_name}"
    postgres.create_database(target)
    wrong_password = postgres.url(target, password="not-the-password")
    unreachable = f"postgresql://postgres:s3cret-pw@127.0.0.1:1/{target}"

    for url in (wrong_password, unreachable):
        status, body = stack.restore("shop", backup_id="latest", target_url=url)
        assert status == 422, body
        assert body["error"]["field"] == "target_url"
        assert "not-the-password" not in json.dumps(body)
        assert "s3cret-pw" not in json.dumps(body)

    status, body = stack.restore(
        "shop", backup_id="latest", target_url=postgres.url(target), target_time="latest"
    )
    assert status == 422
    assert body["error"]["code"] == "invalid_input"  # both
    status, body = stack.restore("shop", target_url=postgres.url(target), target_time="latest")
    assert status == 422
    assert body["error"]["code"] == "not_supported"
    status, body = stack.restore("shop", target_url=postgres.url(target))
    assert (status, body["error"]["code"]) == (422, "invalid_input")  # neither
    assert stack.requests == []
    assert stack.restore_secrets() == []
    status, page = stack.call("GET", "/v1/databases/shop/restores")
    assert page["restores"] == []
    assert postgres.psql("SELECT count(*) FROM pg_class WHERE relname = 'items'", target) == "0"


def test_one_restore_at_a_time_per_target(
    stack: Stack, source: str, postgres: EmbeddedPostgres, database_name: str
) -> None:
    stack.backed_up("shop", source)
    target_url = postgres.create_database(f"target_{database_name}")
    status, first = stack.restore("shop", backup_id="latest", target_url=target_url)
    assert status == 202

    status, body = stack.restore("shop", backup_id="latest", target_url=target_url)

    assert status == 409
    assert body["error"]["code"] == "restore_in_progress"
    assert body["error"]["restore_id"] == first["id"]
    stack.run_requests()
    status, _ = stack.restore("shop", backup_id="latest", target_url=target_url)
    assert status == 202


def test_a_restore_killed_halfway_is_an_error_saying_the_target_may_be_partial(
    stack: Stack, source: str, postgres: EmbeddedPostgres, database_name: str
) -> None:
    stack.backed_up("shop", source)
    target = f"target_{database_name}"
    target_url = postgres.create_database(target)
    postgres.psql("CREATE TABLE items (id int)", target)
    status, body = stack.restore("shop", backup_id="latest", target_url=target_url)
    assert status == 202
    # pg_restore's DROP TABLE items (--clean) waits on this lock; then it is killed.
    holder = psycopg2.connect(target_url)
    holder.cursor().execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
    killer = threading.Thread(target=_terminate_waiting_restore, args=(postgres, target))
    killer.start()
    try:
        (result,) = stack.run_requests()
    finally:
        killer.join()
        holder.close()

    assert result["status"] == "error"
    status, shown = stack.call("GET", f"/v1/databases/shop/restores/{body['id']}")
    assert shown["status"] == "error"
    assert shown["error"]
    assert any("the target may be partial" in warning for warning in shown["warnings"])
    assert stack.restore_secrets() == []
    events = [e for e in stack.aws.received_events() if e["detail-type"] == "Restore Failed"]
    assert [e["detail"]["id"] for e in events] == [body["id"]]


def _terminate_waiting_restore(postgres: EmbeddedPostgres, target: str) -> None:
    for _ in range(300):
        killed = postgres.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{target}' AND wait_event_type = 'Lock'"
        )
        if killed != "0":
            return
        time.sleep(0.1)


def test_a_runner_that_dies_is_reaped_with_the_partial_warning(
    stack: Stack, source: str, postgres: EmbeddedPostgres, database_name: str
) -> None:
    stack.backed_up("shop", source)
    target_url = postgres.create_database(f"target_{database_name}")
    status, body = stack.restore("shop", backup_id="latest", target_url=target_url)
    services = stack.backup.services
    now = services.clock()
    # The runner took it, then vanished (killed at its deadline) without a word.
    started = services.restores.start_restore(
        "shop", body["id"], now, runner="lambda", deadline_at=now + timedelta(seconds=60)
    )
    assert started is not None

    services.clock = lambda: now + timedelta(minutes=10)
    report = dispatch(services, now)

    assert [r.id for r in report.reaped_restores] == [body["id"]]
    status, shown = stack.call("GET", f"/v1/databases/shop/restores/{body['id']}")
    assert shown["status"] == "error"
    assert shown["error"].startswith("timed out")
    assert any("the target may be partial" in warning for warning in shown["warnings"])
    assert stack.restore_secrets() == []
    # The target is free again.
    stack.requests.clear()
    status, _ = stack.restore("shop", backup_id="latest", target_url=target_url)
    assert status == 202


def test_the_target_url_is_nowhere_but_its_secret(
    stack: Stack,
    source: str,
    postgres: EmbeddedPostgres,
    database_name: str,
    logs: io.StringIO,
) -> None:
    stack.backed_up("shop", source)
    target = f"target_{database_name}"
    postgres.create_database(target)
    password = postgres.password
    target_url = postgres.url(target)

    restore = stack.restored("shop", backup_id="latest", target_url=target_url)
    # A failing one too (its target dropped before it ran): its error quotes pg_restore.
    status, failing = stack.restore("shop", backup_id="latest", target_url=target_url)
    assert status == 202
    postgres.psql(f'DROP DATABASE "{target}"')
    (result,) = stack.run_requests()
    assert result["status"] == "error"

    items = stack.aws.dynamodb.scan(TableName=stack.aws.settings.table_name)["Items"]
    events = stack.aws.received_events()
    for where, text in {
        "dynamodb": json.dumps(items),
        "logs": logs.getvalue(),
        "events": json.dumps(events),
        "responses": "\n".join(stack.answers),
    }.items():
        assert password not in text, where
        assert target_url not in text, where
    assert restore["target"] in json.dumps(items)
    assert stack.restore_secrets() == []
    status, shown = stack.call("GET", f"/v1/databases/shop/restores/{failing['id']}")
    assert "does not exist" in shown["error"]


def test_a_restore_that_reaches_its_deadline_is_stopped_and_says_so(
    stack: Stack, source: str, postgres: EmbeddedPostgres, database_name: str
) -> None:
    stack.backed_up("shop", source)
    target = f"target_{database_name}"
    target_url = postgres.create_database(target)
    postgres.psql("CREATE TABLE items (id int)", target)
    status, _ = stack.restore("shop", backup_id="latest", target_url=target_url)
    assert status == 202
    (request,) = stack.requests
    # pg_restore waits on this lock past the runner's deadline (a second after the margin).
    holder = psycopg2.connect(target_url)
    holder.cursor().execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
    try:
        restore = run_restore(
            stack.backup.services, request, seconds_left=DEADLINE_MARGIN_SECONDS + 1,
            runner="lambda",
        )  # fmt: skip
    finally:
        holder.close()

    assert restore is not None
    assert restore.status == "error"
    assert restore.error is not None and restore.error.startswith("timed out")
    assert any("the target may be partial" in warning for warning in restore.warnings)
    assert stack.restore_secrets() == []
    assert (
        postgres.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") == "0"
    )


def test_a_task_stopped_while_it_records_progress_ends_the_restore(
    stack: Stack, source: str, postgres: EmbeddedPostgres, database_name: str
) -> None:
    """ECS's SIGTERM (StopTask) arriving while the task records the restore's progress:
    the task's handler (functions/backup_task.py) raises there, and the restore stops."""
    from functions.backup_task import stop_restore

    stack.backed_up("shop", source)
    target_url = postgres.create_database(f"target_{database_name}")
    status, _ = stack.restore("shop", backup_id="latest", target_url=target_url)
    assert status == 202
    (request,) = stack.requests
    services = stack.backup.services
    recorded: list[int] = []

    def stopped_while_recording(database: str, restore_id: str, done: int, total: Any) -> None:
        recorded.append(done)
        stop_restore(signal.SIGTERM, None)

    services.restores.record_progress = stopped_while_recording

    restore = run_restore(services, request, seconds_left=600, runner="fargate")

    assert recorded, "the restore never recorded its progress"
    assert restore is not None and restore.status == "error", restore
    assert restore.error is not None and "the task was stopped" in restore.error
    assert any("the target may be partial" in warning for warning in restore.warnings)
    assert stack.restore_secrets() == []


def test_a_runner_that_cannot_start_leaves_no_secret_and_frees_the_target(
    stack: Stack, source: str, postgres: EmbeddedPostgres, database_name: str
) -> None:
    stack.backed_up("shop", source)
    target_url = postgres.create_database(f"target_{database_name}")

    def refuse(request: BackupRequest) -> None:
        raise RuntimeError("throttled")

    stack.start = refuse  # type: ignore[method-assign]
    status, body = stack.restore("shop", backup_id="latest", target_url=target_url)

    assert status == 503
    assert body["error"]["code"] == "backup_not_started"
    assert stack.restore_secrets() == []
    status, page = stack.call("GET", "/v1/databases/shop/restores")
    (failed,) = page["restores"]
    assert failed["status"] == "error"
    assert failed["warnings"] == []  # nothing touched the target
    events = [e for e in stack.aws.received_events() if e["detail-type"] == "Restore Failed"]
    assert [e["detail"]["id"] for e in events] == [failed["id"]]
    del stack.start
    status, _ = stack.restore("shop", backup_id="latest", target_url=target_url)
    assert status == 202


def test_an_unknown_restore_is_404(stack: Stack, source: str) -> None:
    status, body = stack.call("POST", "/v1/databases", {"name": "shop", "url": source})
    assert status == 201
    for restore_id in ("01KB40000000000000000000RS", "not-an-id"):
        status, body = stack.call("GET", f"/v1/databases/shop/restores/{restore_id}")
        assert (status, body["error"]["code"]) == (404, "restore_not_found")
    status, body = stack.call("GET", "/v1/databases/nope/restores")
    assert (status, body["error"]["code"]) == (404, "database_not_found")


def test_a_restore_of_a_backup_that_outgrew_lambda_runs_on_fargate(
    stack: Stack, source: str
) -> None:
    stack.backed_up("shop", source)
    fargate: list[BackupRequest] = []

    class Fargate:
        name = "fargate"

        def start(self, request: BackupRequest) -> None:
            fargate.append(request)

    services = stack.api.services
    services.fargate = Fargate()
    # The backup's database is over the size above which `auto` picks Fargate.
    services.settings = dataclasses.replace(services.settings, fargate_size_threshold_bytes=1)
    target_url = source.rsplit("/", 1)[0] + "/postgres"

    status, body = stack.restore("shop", backup_id="latest", target_url=target_url)

    assert status == 202, body
    assert [(r.kind, r.backup_id) for r in fargate] == [("restore", body["id"])]
    assert stack.requests == []
