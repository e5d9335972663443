"""The web dashboard (README, "Dashboard"): `GET /` and its static files, same origin as /v1.

The page signs in with the API token itself, so these routes need no authorizer
(template.yaml says `Authorizer: NONE`, like /v1/openapi.json). Only the files
named in `ASSETS` are served: a request names a file, never a path, so nothing
else in the package can be read. Every answer, a 404 included, carries headers
that forbid inline script and style, framing, MIME sniffing and referrers.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# The page and every file it loads, with their media types.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "chart.js": "text/javascript; charset=utf-8",
    "access.js": "text/javascript; charset=utf-8",
    "tokens.js": "text/javascript; charset=utf-8",
    "activity.js": "text/javascript; charset=utf-8",
    "holds.js": "text/javascript; charset=utf-8",
    "restores.js": "text/javascript; charset=utf-8",
    "verification.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Files change with each deployment: revalidate rather than serve a stale page.
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def not_found() -> Response[str]:
    """The dashboard's 404: plain text that never echoes what was asked for."""
    return Response(404, "text/plain; charset=utf-8", "not found\n", headers=dict(SECURITY_HEADERS))


def asset_response(name: str) -> Response[str]:
    """The file `name` if it is one of the dashboard's, else a 404; strict headers on both."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return not_found()
    return Response(200, content_type, _read(name), headers=dict(SECURITY_HEADERS))


def build_router() -> Router:
    """The dashboard's routes, left out of the OpenAPI document (they are not the API)."""
    router = Router()

    @router.get("/", include_in_schema=False)
    def dashboard_page() -> Response[str]:
        return asset_response("index.html")

    @router.get("/static/<file>", include_in_schema=False)
    def dashboard_asset(file: str) -> Response[str]:
        return asset_response(file)

    return router
