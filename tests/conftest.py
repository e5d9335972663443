"""The test harness: throwaway PostgreSQL clusters, a moto server, Lambda fixtures.

Servers listen on 127.0.0.1 only and are stopped when the session ends, even
when a test fails. AWS calls can only reach the moto server: the credentials
are fake and AWS_ENDPOINT_URL points every client at it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from pgbackups.domain.models import BackupRequest
from pgbackups.postgres.pgtools import PgToolsNotFound, locate_pgtools
from pgbackups.services import Services
from pgbackups.settings import Settings
from pgbackups.wiring import build_services
from pgbackups_local.functions import LambdaContext, load_handler_module
from pgbackups_local.postgres import EmbeddedPostgres, free_port
from pgbackups_local.stack import BUILT_LAYER
from pgbackups_local.template import load_template, table_definition

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
REGION = "eu-west-1"

# Before anything builds a boto3 client: never real credentials, never real AWS.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION=REGION,
    AWS_REGION=REGION,
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_METRICS_NAMESPACE="pgbackups",
    POWERTOOLS_SERVICE_NAME="pgbackups",
)


def _stopped(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A run stopped by SIGTERM (a CI timeout, `kill`) ends as on Ctrl-C: the fixtures'
    # teardowns stop the clusters, servers and stacks they started.
    signal.signal(signal.SIGTERM, _stopped)


# -- layers -------------------------------------------------------------------------

# Each layer is a folder of tests/ and the marker of the same name; `make test-<layer>`
# runs one, `make test` all of them. A test outside them would never run.
LAYERS = ("unit", "integration", "e2e", "template")
# What a unit test must not start (`make test-unit` needs the venv alone, and is quick).
SERVERS = ("postgres", "postgres15", "moto_endpoint")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run a test that is not in exactly one layer, its folder's, or a unit test
    that starts a server."""
    tests = config.rootpath / "tests"
    strays = []
    for item in items:
        if not item.path.is_relative_to(tests):
            continue  # not this suite's (this conftest loaded as a plugin elsewhere)
        folder = item.path.relative_to(tests).parts[0]
        marked = sorted({mark.name for mark in item.iter_markers() if mark.name in LAYERS})
        servers = [name for name in SERVERS if name in getattr(item, "fixturenames", ())]
        if marked != [folder]:
            where = f"tests/{folder}/" if item.path.parent != tests else "tests/"
            strays.append(f"  {item.nodeid}: marked {marked or 'with no layer'}, in {where}")
        elif folder == "unit" and servers:
            strays.append(
                f"  {item.nodeid}: a unit test starts no server, this one uses {servers[0]}"
            )
    if strays:
        raise pytest.UsageError(
            "every test belongs to exactly one layer: a folder of tests/ among "
            f"{', '.join(LAYERS)} and its marker (`pytestmark = pytest.mark.<layer>`):\n"
            + "\n".join(strays)
        )


def load_event(name: str) -> dict[str, Any]:
    """A payload from events/, the same file `sam local invoke -e` takes."""
    return json.loads((EVENTS / f"{name}.json").read_text())


def api_event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    """An HTTP API request to the api function (events/api-list-databases.json, re-aimed)."""
    event = load_event("api-list-databases")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = f"{method} {path}"
    event.pop("pathParameters", None)
    event["rawQueryString"] = ""
    event.pop("queryStringParameters", None)
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"]["content-type"] = "application/json"
    return event


@pytest.fixture(name="load_event")
def load_event_fixture() -> Callable[[str], dict[str, Any]]:
    return load_event


def load_function(name: str) -> ModuleType:
    """functions/<name>.py imported afresh, so its module-level clients see this test's env."""
    return load_handler_module(name)


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext(function_name="pgbackups-test", timeout_seconds=900, region=REGION)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything the functions log (powertools' JSON lines and any other logger)."""
    sink = io.StringIO()
    # Assigned, not setStream(): that flushes the old stream, which may be a previous
    # test's captured stdout, already closed.
    handlers = [
        h for h in logging.getLogger("pgbackups").handlers if isinstance(h, logging.StreamHandler)
    ]
    for handler in handlers:
        handler.stream = sink
    catch_all = logging.StreamHandler(sink)
    logging.getLogger().addHandler(catch_all)
    try:
        yield sink
    finally:
        logging.getLogger().removeHandler(catch_all)
        for handler in handlers:
            handler.stream = sys.stdout


# -- PostgreSQL -------------------------------------------------------------------


@pytest.fixture(scope="session")
def pgtools_dir() -> Path:
    """The built pgtools layer (bin/, lib/), as the backup function sees /opt."""
    try:
        return locate_pgtools(fallback=BUILT_LAYER, program="pg_dump").root
    except PgToolsNotFound as error:
        pytest.fail(f"{error} (`make test` builds it)")


# One cluster per major per module (a second or so to start): a module's tests share it,
# each in a fresh database (`database_url`), and no module sees another's databases,
# whatever the order the modules run in.
PG15 = Path(os.environ.get("PGBACKUPS_PG15_DIR", "/usr/lib/postgresql/15"))


@pytest.fixture(scope="module")
def postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL 18 cluster shared by the module's tests."""
    server = EmbeddedPostgres(name="tests").init().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def postgres15() -> Iterator[EmbeddedPostgres]:
    """Debian's PostgreSQL 15 (`make test` installs it), shared by the module's tests:
    most servers out there are older than pg_restore 18."""
    if not (PG15 / "bin" / "postgres").exists():
        pytest.fail(
            f"Debian's PostgreSQL 15 is not in {PG15}: `make test` installs it "
            "(apt-get install -y postgresql-15)"
        )
    server = EmbeddedPostgres(name="pg15", install=PG15).init().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def database_name() -> str:
    return f"db_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def database_url(postgres: EmbeddedPostgres, database_name: str) -> str:
    return postgres.create_database(database_name)


# -- AWS (moto server) --------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    previous = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = previous


@dataclass
class AwsStack:
    """Fresh, uniquely named resources on the moto server, as the template declares them."""

    endpoint: str
    settings: Settings
    s3: Any
    dynamodb: Any
    secretsmanager: Any
    events: Any
    sqs: Any
    events_queue_url: str

    def object_keys(self) -> list[str]:
        """Every object in the bucket (one listing page is plenty for a test)."""
        listing = self.s3.list_objects_v2(Bucket=self.settings.bucket_name)
        return sorted(obj["Key"] for obj in listing.get("Contents", []))

    def pending_uploads(self) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted."""
        listing = self.s3.list_multipart_uploads(Bucket=self.settings.bucket_name)
        return [upload["Key"] for upload in listing.get("Uploads", [])]

    def received_events(self) -> list[dict[str, Any]]:
        """Events put on the bus so far (routed to an SQS queue by a catch-all rule)."""
        messages = []
        while True:
            response = self.sqs.receive_message(
                QueueUrl=self.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            batch = response.get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.events_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture
def aws(moto_endpoint: str, pgtools_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AwsStack:
    suffix = uuid.uuid4().hex[:10]
    settings = Settings(
        table_name=f"pgbackups-{suffix}",
        bucket_name=f"pgbackups-{suffix}",
        secret_prefix=f"pgbackups/{suffix}",
        event_bus_name=f"pgbackups-{suffix}",
        backup_function_name=f"pgbackups-backup-{suffix}",
        pgtools_dir=pgtools_dir,
    )
    clients = {
        name: boto3.client(name, endpoint_url=moto_endpoint, region_name=REGION)
        for name in ("s3", "dynamodb", "secretsmanager", "events", "sqs")
    }
    clients["s3"].create_bucket(
        Bucket=settings.bucket_name, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    clients["dynamodb"].create_table(**table_definition(load_template(), settings.table_name))
    clients["events"].create_event_bus(Name=settings.event_bus_name)
    queue_url = clients["sqs"].create_queue(QueueName=f"events-{suffix}")["QueueUrl"]
    queue_arn = clients["sqs"].get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    clients["events"].put_rule(
        Name=f"all-{suffix}",
        EventBusName=settings.event_bus_name,
        EventPattern=json.dumps({"source": ["pgbackups"]}),
    )
    clients["events"].put_targets(
        Rule=f"all-{suffix}",
        EventBusName=settings.event_bus_name,
        Targets=[{"Id": "queue", "Arn": queue_arn}],
    )
    for name, value in {
        "TABLE_NAME": settings.table_name,
        "BUCKET_NAME": settings.bucket_name,
        "SECRET_PREFIX": settings.secret_prefix,
        "EVENT_BUS_NAME": settings.event_bus_name,
        "BACKUP_FUNCTION_NAME": settings.backup_function_name,
        "PGTOOLS_DIR": str(settings.pgtools_dir),
    }.items():
        monkeypatch.setenv(name, value)
    return AwsStack(
        endpoint=moto_endpoint,
        settings=settings,
        events_queue_url=queue_url,
        **clients,
    )


class RecordingRunner:
    """Stands in for the async Lambda invoke of the backup function: records the
    (database, backup id) of each logical backup's start and each base backup's
    request, or raises `error` when a test sets one."""

    name = "lambda"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.base_backups: list[BackupRequest] = []
        self.error: Exception | None = None

    def start(self, request: BackupRequest) -> None:
        if self.error is not None:
            raise self.error
        if request.kind == "base":
            self.base_backups.append(request)
        else:
            self.calls.append((request.database, request.backup_id))

    def take_base_backup_requests(self) -> list[BackupRequest]:
        """The base backups asked for since the last call (a test then runs them)."""
        taken, self.base_backups = self.base_backups, []
        return taken


@pytest.fixture
def services(aws: AwsStack) -> Services:
    """The domain's services on this test's moto resources; invocations are recorded."""
    services = build_services(aws.settings)
    services.runner = RecordingRunner()
    return services
