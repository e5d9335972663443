"""Real connections to users' databases: checking a URL, learning server facts."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2

from pgbackups.domain.errors import ConnectionFailed
from pgbackups.postgres.urls import redact, scrub

CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class ServerFacts:
    server_version: str
    database_size: int


def _reason(error: Exception, url: str) -> str:
    """psycopg2's message on one line, with nothing of the URL's secret in it."""
    return scrub(" ".join(str(error).split()), url)


def probe(url: str, *, timeout: int = CONNECT_TIMEOUT_SECONDS) -> ServerFacts:
    """Connect to `url` and read the facts a backup records; ConnectionFailed if refused."""
    if not url.startswith(("postgres://", "postgresql://")):
        raise ConnectionFailed("the URL must start with postgres:// or postgresql://")
    try:
        connection = psycopg2.connect(url, connect_timeout=timeout, application_name="pgbackups")
    except (psycopg2.Error, ValueError) as error:
        raise ConnectionFailed(f"cannot connect to {redact(url)}: {_reason(error, url)}") from None
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('server_version'), pg_database_size(current_database())"
            )
            version, size = cursor.fetchone()
    except psycopg2.Error as error:
        raise ConnectionFailed(f"cannot query {redact(url)}: {_reason(error, url)}") from None
    finally:
        connection.close()
    return ServerFacts(server_version=str(version), database_size=int(size))
