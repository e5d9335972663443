"""The documentation that a test can hold to the code: the API reference's route table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pgbackups.api.app import build_api, openapi_document
from tests.unit.test_api_app import Untouchable

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_ROUTES = {("GET", "/"), ("GET", "/static/{file}")}
ROUTE = re.compile(r"`((?:GET|POST|PUT|PATCH|DELETE)(?:/(?:GET|POST|PUT|PATCH|DELETE))*) (/[^`?]*)")


def documented_routes(text: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split(" | ")[0]
        for methods, path in ROUTE.findall(cell):
            found |= {(method, path) for method in methods.split("/")}
    return found


def test_the_api_reference_lists_exactly_the_routes_of_the_openapi_document() -> None:
    document = openapi_document(build_api(Untouchable()))
    declared = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    declared.add(("GET", "/v1/openapi.json"))
    documented = documented_routes((ROOT / "docs" / "api.md").read_text(encoding="utf-8"))
    assert documented - DASHBOARD_ROUTES == declared


def test_the_readme_stays_short_and_links_the_design_notes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 15 * 1024
    for linked in re.findall(r"\]\(((?:docs|bench)/[^)#]+)", readme):
        assert (ROOT / linked).is_file(), linked
