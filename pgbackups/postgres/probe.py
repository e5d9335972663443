"""Real connections to users' databases: checking a URL, learning server facts.

The probe connects with the very connection string and password that pg_dump
gets (`pgbackups.postgres.urls.Connection`), so a URL that registers is a URL
that backs up.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2

from pgbackups.domain.errors import ConnectionFailed
from pgbackups.postgres.urls import Connection

CONNECT_TIMEOUT_SECONDS = 10
APPLICATION_NAME = "pgbackups"


@dataclass(frozen=True)
class ServerFacts:
    server_version: str
    database_size: int


def probe(target: Connection, *, timeout: int = CONNECT_TIMEOUT_SECONDS) -> ServerFacts:
    """Connect to `target` and read the facts a backup records; ConnectionFailed if refused."""
    # Defaults only, as PgTools.environment gives pg_dump: the URL's own settings win.
    defaults = {"connect_timeout": timeout, "application_name": APPLICATION_NAME}
    extra = {k: v for k, v in defaults.items() if k not in target.parameters}
    try:
        connection = psycopg2.connect(target.conninfo, password=target.password, **extra)
    except (psycopg2.Error, ValueError) as error:
        raise ConnectionFailed(target.failure("cannot connect to", error)) from None
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('server_version'), pg_database_size(current_database())"
            )
            version, size = cursor.fetchone()
    except psycopg2.Error as error:
        raise ConnectionFailed(target.failure("cannot query", error)) from None
    finally:
        connection.close()
    return ServerFacts(server_version=str(version), database_size=int(size))
