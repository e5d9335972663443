"""The HTTP API through the real api handler, as the API tests call it: events/ payloads with
this test's path, query and body, and the handler's answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from pgbackups.domain.models import BackupRecord
from pgbackups.services import Services
from tests.conftest import AwsStack, LambdaContext, RecordingRunner, load_event

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
