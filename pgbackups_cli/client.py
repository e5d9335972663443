"""The HTTP API as the CLI calls it, with the standard library's urllib only.

Every failure becomes one `ApiFailure` whose message is fit for a user: the
API's own `{"error": {"code", "message"}}`, a refused token, an unreachable
URL, or an answer that is not the API's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    import urllib.error
    import urllib.request

TIMEOUT_SECONDS = 30


@functools.cache
def user_agent() -> str:
    """`pgbackups-cli/<version>`, looked up on the first request (not at start-up)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"pgbackups-cli/{version('pgbackups')}"
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "pgbackups-cli/0"


class ApiFailure(Exception):
    """A call did not succeed; `message` says why, for people."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class TokenRefused(ApiFailure):
    pass


class ApiUnreachable(ApiFailure):
    pass


def urlopen(request: urllib.request.Request, timeout: float) -> Any:
    """One indirection, so unit tests can answer without a server."""
    import urllib.request  # on the first request: http.client and email are slow to load

    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (callers check the scheme)


def segment(value: str) -> str:
    return quote(value, safe="")


@dataclass
class ApiClient:
    api_url: str
    token: str
    token_from: str = "the configuration"  # noqa: S105 (a label, not a secret)
    hint_unreachable: str = ""
    timeout: float = TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not self.api_url.startswith(("http://", "https://")):
            raise ApiFailure(f"the API URL must start with http:// or https://: {self.api_url}")

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer of a 2xx (None when empty); ApiFailure otherwise."""
        import urllib.error
        import urllib.request

        url = self.api_url + path
        present = {key: value for key, value in (query or {}).items() if value is not None}
        if present:
            url += "?" + urlencode(present)
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": user_agent(),
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 (http(s), checked in __post_init__)
        try:
            with urlopen(request, self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise self._refusal(error) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise ApiUnreachable(
                f"Cannot reach the API at {self.api_url}: {reason}{self.hint_unreachable}"
            ) from None
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise ApiFailure(
                f"The API at {self.api_url} answered {method} {path} with something that "
                "is not JSON: is this the pgbackups API?"
            ) from None

    def _refusal(self, error: urllib.error.HTTPError) -> ApiFailure:
        try:
            raw = error.read()
        except OSError:
            raw = b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        detail = body.get("error") if isinstance(body, dict) else None
        if error.code in (401, 403) and not isinstance(detail, dict):
            # API Gateway's own answer: no token (401) or a token the authorizer refused (403).
            return TokenRefused(
                f"The API at {self.api_url} refused the token from {self.token_from} "
                f"({error.code}). Check it, or save the right one with `pgbackups login`.",
                status=error.code,
            )
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            return ApiFailure(
                detail["message"], status=error.code, code=str(detail.get("code") or "")
            )
        message = body.get("message") if isinstance(body, dict) else None
        text = f": {message}" if isinstance(message, str) else ""
        return ApiFailure(
            f"The API at {self.api_url} answered {error.code} {error.reason}{text}",
            status=error.code,
        )


def database_path(database: str, *rest: str) -> str:
    return "/".join(["/v1/databases", segment(database), *(segment(part) for part in rest)])
