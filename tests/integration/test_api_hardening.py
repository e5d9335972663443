"""The API against hostile or careless input: unsafe connection parameters, deep JSON,
loose types, non-canonical time zones; and what X-Ray is allowed to keep."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, LambdaContext, RecordingRunner, load_function
from tests.integration.api import NOW, Api, make_backup, secret_value, table_items

pytestmark = pytest.mark.integration


@pytest.fixture
def api(aws: AwsStack, lambda_context: LambdaContext) -> Api:
    module = load_function("api")
    runner = RecordingRunner()
    module.services.runner = runner
    module.services.clock = lambda: NOW
    return Api(module, runner, aws, lambda_context)


# -- connection URLs (issue 15, items 1 and 2) ------------------------------------------


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("passfile=/root/.pgpass", "passfile"),
        ("sslrootcert=/etc/shadow", "sslrootcert"),
        ("sslcert=/tmp/client.crt", "sslcert"),
        ("sslkey=/tmp/client.key", "sslkey"),
        ("service=production", "service"),
        ("host=/var/run/postgresql", "host"),
        ("hostaddr=169.254.169.254", "hostaddr"),
    ],
)
def test_register_refuses_parameters_that_reach_the_functions_files_or_sockets(
    api: Api, database_name: str, database_url: str, query: str, parameter: str
) -> None:
    answer = api.call(
        "api-create-database", body={"name": database_name, "url": f"{database_url}?{query}"}
    )

    assert answer.status == 422, answer.body
    error = answer.body["error"]
    assert error["code"] == "connection_parameter_not_allowed"
    assert error["parameter"] == parameter
    assert error["field"] == "url"
    assert parameter in error["message"]
    assert secret_value(api.aws, database_name) is None
    assert table_items(api.aws) == []


@pytest.mark.parametrize(
    "password", ["Hash#Secret1", "Ask?Secret2", "Plus+Secret3", "Spa ce&and=more%"]
)
def test_a_password_that_python_and_libpq_read_differently_registers_and_backs_up(
    api: Api, postgres: EmbeddedPostgres, database_name: str, password: str
) -> None:
    """The registration check connects with what pg_dump will get: a URL that registers works."""
    from urllib.parse import quote

    import psycopg2
    from psycopg2 import sql

    postgres.create_database(database_name)
    role = f"r_{database_name}"
    with psycopg2.connect(postgres.url()) as connection, connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    connection.close()
    address = f"{postgres.host}:{postgres.port}/{database_name}"
    url = (
        f"postgresql://{role}:{password}@{address}"
        if "%" not in password and "&" not in password
        else f"postgresql://{role}@{address}?password={quote(password, safe='')}"
        "&options=-c%20statement_timeout%3D0"
    )

    answer = api.call("api-create-database", body={"name": database_name, "url": url})

    assert answer.status == 201, answer.body
    assert password not in json.dumps(table_items(api.aws))


# -- strict input (item 5) -------------------------------------------------------------------


def test_deeply_nested_json_is_400_not_a_crash(api: Api) -> None:
    answer = api.call("api-create-database", raw_body="[" * 5000 + "]" * 5000)

    assert answer.status == 400
    assert answer.body["error"]["code"] == "malformed_body"
    assert "nested" in answer.body["error"]["message"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hour": True}, "hour"),
        ({"hour": "7"}, "hour"),
        ({"hour": 8.0}, "hour"),
        ({"enabled": "off"}, "enabled"),
        ({"enabled": 0}, "enabled"),
        ({"timezone": "localtime"}, "timezone"),
        ({"timezone": "right/Europe/Paris"}, "timezone"),
        ({"timezone": "posix/Europe/Paris"}, "timezone"),
        ({"timezone": "Factory"}, "timezone"),
    ],
)
def test_schedules_take_json_integers_booleans_and_iana_names_only(
    api: Api, database_name: str, database_url: str, changes: dict[str, Any], field: str
) -> None:
    api.register(database_name, database_url)
    path = f"/v1/databases/{database_name}/schedule"

    answers = [
        api.call("api-put-schedule", path, body=changes),
        api.call(
            "api-update-database", f"/v1/databases/{database_name}", body={"schedule": changes}
        ),
        api.call(
            "api-create-database",
            body={"name": "other", "url": database_url, "schedule": changes},
        ),
    ]

    for answer in answers:
        assert answer.status == 422, answer.body
        assert answer.body["error"]["field"].endswith(field)
    schedule = api.call("api-get-schedule", path).body
    assert (schedule["enabled"], schedule["hour"], schedule["timezone"]) == (
        True,
        1,
        "Europe/Paris",
    )


@pytest.mark.parametrize("daily", [True, "7", 7.0])
def test_retention_counts_are_json_integers_only(
    api: Api, database_name: str, database_url: str, daily: Any
) -> None:
    answer = api.call(
        "api-create-database",
        body={"name": database_name, "url": database_url, "retention": {"daily": daily}},
    )

    assert answer.status == 422
    assert answer.body["error"]["field"] == "retention.daily"


def test_json_integers_booleans_and_iana_names_are_still_accepted(
    api: Api, database_name: str, database_url: str
) -> None:
    api.register(
        database_name,
        database_url,
        schedule={"enabled": False, "hour": 7, "timezone": "America/New_York"},
        retention={"daily": 3},
    )
    answer = api.call(
        "api-put-schedule",
        f"/v1/databases/{database_name}/schedule",
        body={"enabled": True, "hour": 0, "timezone": "UTC"},
    )
    assert answer.status == 200
    assert (answer.body["enabled"], answer.body["hour"]) == (True, 0)


# -- tracing (item 6) ------------------------------------------------------------------------


class RecordingSubsegment:
    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.metadata[key] = value

    def put_annotation(self, key: str, value: Any) -> None:
        pass


class RecordingProvider:
    """Stands in for the X-Ray SDK: keeps what the tracer would send."""

    def __init__(self) -> None:
        self.subsegments: list[RecordingSubsegment] = []

    @contextlib.contextmanager
    def in_subsegment(self, name: str, **_: Any) -> Iterator[RecordingSubsegment]:
        subsegment = RecordingSubsegment()
        self.subsegments.append(subsegment)
        yield subsegment


def test_presigned_urls_never_reach_xray(
    api: Api, database_name: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.register(database_name, database_url)
    backup = make_backup(api.services, database_name, NOW - timedelta(hours=1))
    provider = RecordingProvider()
    monkeypatch.setattr(api.module.tracer, "provider", provider)

    answer = api.call(
        "api-get-backup-archive", f"/v1/databases/{database_name}/backups/{backup.id}/archive"
    )

    assert answer.status == 200
    assert "X-Amz-Signature" in answer.body["download_url"]
    assert provider.subsegments, "the handler is traced"
    recorded = json.dumps([s.metadata for s in provider.subsegments], default=str)
    assert "X-Amz-Signature" not in recorded
    assert "download_url" not in recorded
