"""The HTTP API keeps the promises of its own OpenAPI document, under generated input.

Schemathesis generates requests from the document that the API serves, and
sends them with a real token through the local gateway (authorizer included)
to the real api function on moto, with a real PostgreSQL database registered.
Every answer must be documented, match its schema, and never be a 5xx.

Connection URLs that the generator makes up are refused without a connection:
only the test's own cluster may be contacted from here.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pgbackups.domain.errors import ConnectionFailed
from pgbackups.domain.models import BackupRequest, utcnow
from pgbackups.postgres import probe as connections
from pgbackups.postgres.urls import Connection, registered_connection
from pgbackups.services import Services
from pgbackups_local.gateway import Gateway
from tests.conftest import ROOT, AwsStack

pytestmark = pytest.mark.e2e

# No 5xx; every status documented for its operation, with the documented media type and schema.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Examples per operation and run; 12 operations x 3 runs, at least 500 cases in all.
PINNED_EXAMPLES = 25
FREE_EXAMPLES = 12
NEGATIVE_EXAMPLES = 12
MIN_CASES = 500


class CompletingRunner:
    """Plays the backup function at once: the backup is `done` with a tiny archive."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.calls: list[tuple[str, str]] = []

    name = "lambda"

    def start(self, request: BackupRequest) -> None:
        self.calls.append((request.database, request.backup_id))
        now = utcnow()
        running = self.services.catalog.start_backup(
            request.database, request.backup_id, now, runner=self.name, deadline_at=now
        )
        assert running is not None
        archive = b"PGDMP" + secrets.token_bytes(64)
        self.services.archives.upload_stream(running.object_key, io.BytesIO(archive))
        done = running.model_copy(
            update={
                "status": "done",
                "finished_at": utcnow(),
                "size": len(archive),
                "sha256": hashlib.sha256(archive).hexdigest(),
                "compression": "zstd:3",
                "source": "primary",
            }
        )
        assert self.services.catalog.finish_backup(done)


@dataclass
class Stack:
    gateway: Gateway
    session: requests.Session
    database: str
    database_url: str

    def register(self) -> None:
        answer = self.session.post(
            f"{self.gateway.url}/v1/databases",
            json={"name": self.database, "url": self.database_url},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text


@pytest.fixture
def stack(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch, database_name: str, database_url: str
) -> Iterator[Stack]:
    token = secrets.token_urlsafe(36)
    arn = aws.secretsmanager.create_secret(
        Name=f"{aws.settings.secret_prefix}/api-token", SecretString=token
    )["ARN"]
    monkeypatch.setenv("TOKEN_SECRET_ID", arn)

    real_probe = connections.probe

    own = registered_connection(database_url)

    def probe_own_cluster_only(target: Connection, **kwargs: Any) -> Any:
        if target.conninfo != own.conninfo or target.password != own.password:
            raise ConnectionFailed("cannot connect: this test reaches its own cluster only")
        return real_probe(target, **kwargs)

    monkeypatch.setattr(connections, "probe", probe_own_cluster_only)

    gateway = Gateway(functions_dir=ROOT / "functions").start()
    services = gateway.module("api").services
    services.runner = CompletingRunner(services)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    stack = Stack(gateway, session, database_name, database_url)
    stack.register()
    try:
        yield stack
    finally:
        session.close()
        gateway.stop()


def _runs(operation: Any, database: str) -> list[tuple[str, Any, int]]:
    """(label, strategy, examples): on the registered database, anywhere, and invalid."""
    path_names = {parameter.name for parameter in operation.path_parameters}
    pinned: dict[str, str] = {"db": database} if "db" in path_names else {}
    if "id" in path_names and operation.method.upper() == "GET":
        pinned["id"] = "latest"
    runs = [
        (
            "registered",
            operation.as_strategy(path_parameters=pinned or None),
            PINNED_EXAMPLES,
        ),
        ("free", operation.as_strategy(), FREE_EXAMPLES),
    ]
    try:
        negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    except Exception:  # nothing to make invalid (no parameter, no body)
        negative = None
    if negative is not None:
        runs.append(("negative", negative, NEGATIVE_EXAMPLES))
    return runs


def _exercise(
    stack: Stack, operation: Any, label: str, strategy: Any, examples: int, seen: Counter[Any]
) -> None:
    """Send `examples` generated cases of one operation and check every answer."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def exercise(case: Any) -> None:
        response = case.call(base_url=stack.gateway.url, session=stack.session)
        seen[f"{operation.label} ({label})"] += 1
        seen[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        if operation.label == "DELETE /v1/databases/{db}" and response.status_code == 204:
            stack.register()  # keep the registered database for the next cases

    exercise()


def test_every_answer_is_documented_and_none_is_a_server_error(stack: Stack) -> None:
    document = stack.session.get(f"{stack.gateway.url}/v1/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    seen: Counter[Any] = Counter()  # cases per operation and run, answers per status

    for result in schema.get_all_operations():
        operation = result.ok()
        for label, strategy, examples in _runs(operation, stack.database):
            _exercise(stack, operation, label, strategy, examples, seen)

    cases = {key: count for key, count in seen.items() if isinstance(key, str)}
    statuses = dict(sorted((k, n) for k, n in seen.items() if isinstance(k, int)))
    print(f"{sum(cases.values())} cases; answers by status: {statuses}; per run: {cases}")
    assert sum(cases.values()) >= MIN_CASES, cases
    # The run reached past validation: successes on the registered database, not only errors.
    assert statuses.get(200) and statuses.get(202) and statuses.get(204), statuses
