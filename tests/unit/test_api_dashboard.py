"""The dashboard's routes on the API function: its files only, with strict headers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pgbackups.api.app import build_api, openapi_document
from pgbackups.api.routers.dashboard import ASSETS, SECURITY_HEADERS, STATIC_DIR
from pgbackups_local.template import http_routes, load_template
from tests.conftest import LambdaContext, load_event

pytestmark = pytest.mark.unit

STRICT = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Untouchable:
    """Services that fail the test if a route reaches them: the files need none."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"services.{name} was used")


def get(path: str) -> dict[str, Any]:
    event = load_event("api-get-dashboard")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    if path != "/":
        event["routeKey"] = event["requestContext"]["routeKey"] = "GET /static/{file}"
        event["pathParameters"] = {"file": path.removeprefix("/static/")}
    response: dict[str, Any] = build_api(Untouchable()).resolve(event, LambdaContext())
    return response


def test_the_page_is_served_at_the_root_with_strict_headers() -> None:
    response = get("/")

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert STRICT.items() <= response["headers"].items()
    assert response["body"] == (STATIC_DIR / "index.html").read_text()
    assert '<script type="module" src="/static/app.js"></script>' in response["body"]


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_each_asset_has_its_media_type(name: str, media_type: str) -> None:
    response = get(f"/static/{name}")

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == media_type
    assert STRICT.items() <= response["headers"].items()
    assert response["body"] == (STATIC_DIR / name).read_text()


@pytest.mark.parametrize(
    "path",
    [
        "/static/dashboard.py",
        "/static/..%2F..%2Fsettings.py",
        "/static/%2E%2E",
        "/static/index.html%00.js",
        "/static/APP.JS",
    ],
)
def test_only_the_dashboards_own_files_are_served(path: str) -> None:
    response = get(path)

    assert response["statusCode"] == 404
    assert STRICT.items() <= response["headers"].items()
    assert response["body"] == "not found\n"


def test_every_listed_asset_exists_and_every_file_is_listed() -> None:
    assert set(ASSETS) == {path.name for path in STATIC_DIR.iterdir()}
    assert SECURITY_HEADERS.items() >= STRICT.items()


def test_the_routes_are_public_and_left_out_of_the_openapi_document() -> None:
    routes = {(r.method, r.path): r for r in http_routes(load_template())}

    assert routes[("GET", "/")].authorized is False
    assert routes[("GET", "/static/{file}")].authorized is False
    paths = openapi_document(build_api(Untouchable()))["paths"]
    assert "/" not in paths and not any(path.startswith("/static") for path in paths)


def test_the_page_never_parses_strings_as_html_or_code() -> None:
    """API values go in as text: no HTML sinks, no eval, no inline script or style."""
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function(")
    for name in ASSETS:
        source = (STATIC_DIR / name).read_text()
        assert not [sink for sink in sinks if sink in source], name
    page = (STATIC_DIR / "index.html").read_text()
    assert "style=" not in page and "<style" not in page
    assert page.count("<script") == 1
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", page)  # no inline event handler


@pytest.mark.parametrize("path", ["/static/", "/static/a/b", "/static/<img src=x>/x", "/nope"])
def test_a_path_that_is_no_file_of_the_dashboard_is_a_plain_404_that_does_not_echo_it(
    path: str,
) -> None:
    response = get(path)

    assert response["statusCode"] == 404
    assert STRICT.items() <= response["headers"].items()
    assert response["body"] == "not found\n"
