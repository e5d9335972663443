"""PostgreSQL connection URLs: naming a target without its password, and masking
passwords in text that came from a server."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit


def redact(url: str | None) -> str | None:
    """`postgres://user:***@host:port/db`, for messages that must name a target."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    user = f"{parts.username}:***@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def url_secrets(url: str) -> set[str]:
    """The password of a URL (in its user info or its query), raw and decoded."""
    try:
        parts = urlsplit(url)
        found = {parts.password or ""}
        found |= {value for key, value in parse_qsl(parts.query) if key == "password"}
    except ValueError:
        return set()
    return {secret for value in found for secret in (value, unquote(value)) if secret}


def scrub(text: str, *urls: str | None) -> str:
    """`text` with the passwords of `urls` masked: for messages built from a server's words."""
    for url in filter(None, urls):
        for secret in sorted(url_secrets(url), key=len, reverse=True):
            text = text.replace(secret, "***")
    return re.sub(r"password=[^\s&]+", "password=***", text)
