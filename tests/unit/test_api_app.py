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
            "message": "retention.weekly: Input should be less than or equal to 52",
            "field": "retention.weekly",
        }
    }


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
