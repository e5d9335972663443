"""The API's routing, validation and error mapping, on fakes: no AWS, no PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate

from pgbackups.api.app import build_api, openapi_document
from pgbackups.domain.errors import BackupInProgress, DatabaseNotFound
from pgbackups_local.template import http_routes, load_template
from tests.conftest import LambdaContext, load_event

pytestmark = pytest.mark.unit


class Untouchable:
    """Services that fail the test if a route reaches them."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"services.{name} was used")


def resolve(services: Any, event_name: str, path: str | None = None, **changes: Any) -> Any:
    event = load_event(event_name)
    if path is not None:
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event.update(changes)
    response = build_api(services).resolve(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


@pytest.mark.parametrize(
    ("event_name", "path", "code"),
    [
        ("api-get-database", "/v1/databases/Shop", "database_not_found"),
        ("api-get-database", "/v1/databases/_shop", "database_not_found"),
        ("api-get-database", "/v1/databases/sh%6fp", "database_not_found"),
        ("api-delete-database", "/v1/databases/shop%2F..", "database_not_found"),
        ("api-list-backups", "/v1/databases/a%20b/backups", "database_not_found"),
        ("api-get-backup", "/v1/databases/shop/backups/01KEZF7CZ87WMWEMMEK3Q551M", "backup_not_found"),
        ("api-get-backup", "/v1/databases/shop/backups/01KEZF7CZ87WMWEMMEK3Q551MXX", "backup_not_found"),
        ("api-get-backup", "/v1/databases/shop/backups/01KEZF7CZ87WMWEMMEK3Q551MU", "backup_not_found"),
        ("api-delete-backup", "/v1/databases/shop/backups/latest", "backup_not_found"),
        ("api-get-backup-archive", "/v1/databases/shop/backups/newest/archive", "backup_not_found"),
    ],
)  # fmt: skip
def test_impossible_names_and_ids_are_404_without_a_lookup(
    event_name: str, path: str, code: str
) -> None:
    status, body = resolve(Untouchable(), event_name, path)

    assert status == 404
    assert body["error"]["code"] == code


def test_invalid_input_is_422_naming_the_field_without_a_lookup() -> None:
    status, body = resolve(
        Untouchable(),
        "api-create-database",
        body=json.dumps({"name": "shop", "url": "postgres://h/x", "retention": {"weekly": 53}}),
    )

    assert status == 422
    assert body == {
        "error": {
            "code": "invalid_input",
            "message": "retention.weekly: the number of weekly backups to keep must be at most 52",
            "field": "retention.weekly",
        }
    }


REGISTRATION = {"name": "shop", "url": "postgres://h/x"}
PYDANTIC_WORDS = ("Input should", "Value error", "String should", "Field required", "Extra inputs")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Shop!"}, "name: the database name must be 1 to 63 lowercase letters, digits, _ and -, starting with a letter or digit"),
        ({"retention": {"daily": 0}}, "retention.daily: the number of daily backups to keep must be at least 1"),
        ({"retention": {"manual": 501}}, "retention.manual: the number of manual backups to keep must be at most 500"),
        ({"retention": {"daily": "7"}}, 'retention.daily: the number of daily backups to keep must be a whole number written as a JSON integer (7, not "7", 7.0 or true)'),
        ({"retention": "lots"}, "retention: the retention policy must be a JSON object"),
        ({"compression": "brotli"}, "compression: unknown compression 'brotli': use none, gzip[:1-9], lz4[:1-12] or zstd[:1-22]"),
        ({"compression": 3}, "compression: the compression must be a string (in double quotes)"),
        ({"runner": "k8s"}, "runner: the runner must be 'lambda', 'fargate' or 'auto'"),
        ({"schedule": {"hour": 24}}, "schedule.hour: the hour must be at most 23"),
        ({"schedule": {"enabled": "yes"}}, "schedule.enabled: `enabled` must be true or false (a JSON boolean)"),
        ({"schedule": {"timezone": "Mars/X"}}, "schedule.timezone: unknown time zone 'Mars/X': use an IANA name such as Europe/Paris"),
        ({"url": ""}, "url: the connection URL must not be empty"),
        ({"url": "x" * 4097}, "url: the connection URL must be at most 4096 characters long"),
        ({"url": None}, "url: the connection URL must be a string (in double quotes)"),
        ({"colour": "red"}, "colour: this request has no field of that name"),
    ],
)  # fmt: skip
def test_every_validation_problem_is_a_sentence_about_the_field_in_the_users_words(
    changes: dict[str, Any], message: str
) -> None:
    status, body = resolve(
        Untouchable(), "api-create-database", body=json.dumps({**REGISTRATION, **changes})
    )

    assert status == 422
    assert body["error"]["message"] == message
    assert body["error"]["field"] == message.split(":")[0]
    assert not [words for words in PYDANTIC_WORDS if words in message]


def test_a_missing_field_and_bad_query_parameters_are_said_in_words_too() -> None:
    assert (
        resolve(Untouchable(), "api-create-database", body='{"name": "shop"}')[1]["error"][
            "message"
        ]
        == "url: the connection URL is required"
    )
    for query, message in [
        ("limit=0", "limit: the page size must be at least 1"),
        ("limit=101", "limit: the page size must be at most 100"),
        ("limit=ten", "limit: the page size must be a whole number"),
        ("status=bogus", "status: the status must be 'scheduled', 'running', 'done' or 'error'"),
    ]:
        name, value = query.split("=")
        status, body = resolve(
            Untouchable(),
            "api-list-backups",
            rawQueryString=query,
            queryStringParameters={name: value},
        )
        assert (status, body["error"]["message"]) == (422, message)


def test_a_missing_body_is_422() -> None:
    event = load_event("api-create-database")
    del event["body"]
    response = build_api(Untouchable()).resolve(event, LambdaContext())

    assert response["statusCode"] == 422
    assert json.loads(response["body"])["error"]["field"] == "body"


class FakeCatalog:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_database(self, name: str, **_: Any) -> Any:
        raise self.error


class FakeServices:
    def __init__(self, error: Exception) -> None:
        self.catalog = FakeCatalog(error)


def test_a_domain_error_is_mapped_with_its_status_code_and_details() -> None:
    busy = BackupInProgress("shop", "01KEZF7CZ87WMWEMMEK3Q551MX")

    assert resolve(FakeServices(busy), "api-get-database") == (
        409,
        {
            "error": {
                "code": "backup_in_progress",
                "message": "a backup of shop is already scheduled or running: 01KEZF7CZ87WMWEMMEK3Q551MX",
                "backup_id": "01KEZF7CZ87WMWEMMEK3Q551MX",
            }
        },
    )
    assert resolve(
        FakeServices(DatabaseNotFound("no database named shop")), "api-get-database"
    ) == (
        404,
        {"error": {"code": "database_not_found", "message": "no database named shop"}},
    )


def test_json_answers_forbid_mime_sniffing() -> None:
    """A browser must never read an answer (which may echo input) as anything but JSON."""
    answers = [
        build_api(FakeServices(DatabaseNotFound("no database named shop"))).resolve(
            load_event("api-get-database"), LambdaContext()
        ),
        build_api(Untouchable()).resolve(load_event("api-get-openapi"), LambdaContext()),
        build_api(Untouchable()).resolve(
            {**load_event("api-create-database"), "body": '{"name": "<b>"}'}, LambdaContext()
        ),
        build_api(Untouchable()).resolve(
            {**load_event("api-get-database"), "rawPath": "/v1/nope"}, LambdaContext()
        ),
    ]

    for answer in answers:
        assert answer["headers"]["Content-Type"] == "application/json", answer
        assert answer["headers"]["X-Content-Type-Options"] == "nosniff", answer
    assert [answer["statusCode"] for answer in answers] == [404, 200, 422, 404]


def test_an_unexpected_error_is_a_500_without_details() -> None:
    status, body = resolve(FakeServices(RuntimeError("secret detail")), "api-get-schedule")

    assert status == 500
    assert body == {"error": {"code": "internal_error", "message": "internal error"}}


def test_the_openapi_route_serves_the_document() -> None:
    status, body = resolve(Untouchable(), "api-get-openapi")

    assert status == 200
    assert body == openapi_document(build_api(Untouchable()))


def test_the_document_is_valid_openapi_3_and_documents_every_route() -> None:
    document = openapi_document(build_api(Untouchable()))

    validate(document)
    routes = {
        (route.method, route.path)
        for route in http_routes(load_template())
        if route.authorized  # the public ones: the document itself and the dashboard's files
    }
    assert {(m.upper(), p) for p, ops in document["paths"].items() for m in ops} == routes
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert {"401", "403", "404", "422"} <= set(answers), (method, path)
            assert answers["422"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }
    # Only what routes use: no leftover powertools schemas.
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_connection_urls_are_documented_write_only() -> None:
    schemas = openapi_document(build_api(Untouchable()))["components"]["schemas"]

    assert schemas["DatabaseRegistration"]["properties"]["url"]["writeOnly"] is True
    assert "url" not in json.dumps(schemas["Database"]["properties"]).replace("has_replica", "")
