"""Registered URLs against a real server: pg_dump logs in with the rebuilt connection
string, and the password is only ever in its environment, never in its argv."""

from __future__ import annotations

import string
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from psycopg2 import sql

from pgbackups.domain.errors import ConnectionFailed
from pgbackups.postgres.dump import ARCHIVE_MAGIC, dump_command, launch
from pgbackups.postgres.pgtools import PgTools
from pgbackups.postgres.probe import probe
from pgbackups.postgres.urls import redact, registered_connection
from pgbackups_local.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration

PRINTABLE_CHARS = string.digits + string.ascii_letters + string.punctuation + " "
SECRET = st.text(alphabet=PRINTABLE_CHARS, min_size=8, max_size=40)
ROLE = st.text(alphabet=PRINTABLE_CHARS, min_size=1, max_size=30)
# The three ways a password reaches a URL: encoded in the user info, as ?password=,
# and unencoded in the user info where libpq accepts it (no @, / or %).
FORMS = ("userinfo", "query", "raw")


def url_for(
    server: EmbeddedPostgres, user: str, password: str, form: str, db: str
) -> tuple[str, str]:
    """The URL, and the password as it is meant to be read from it."""
    address = f"{server.host}:{server.port}/{db}"
    role = quote(user, safe="")
    if form == "userinfo":
        return f"postgresql://{role}:{quote(password, safe='')}@{address}", password
    if form == "query":
        return f"postgresql://{role}@{address}?password={quote(password, safe='')}", password
    raw = "".join(c for c in password if c not in "@/%") or "unencoded"
    return f"postgresql://{role}:{raw}@{address}", raw


@pytest.fixture(scope="module")
def target_database(postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"urls_{uuid.uuid4().hex[:8]}"
    postgres.create_database(name)
    postgres.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)", name)
    yield name


def create_role(server: EmbeddedPostgres, user: str, password: str, database: str) -> None:
    with psycopg2.connect(server.url("postgres")) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
        cursor.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(password)
            )
        )
    with psycopg2.connect(server.url(database)) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("GRANT SELECT ON t TO {}").format(sql.Identifier(user)))
    connection.close()


def drop_role(server: EmbeddedPostgres, user: str, database: str) -> None:
    with psycopg2.connect(server.url(database)) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("REVOKE ALL ON t FROM {}").format(sql.Identifier(user)))
        cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))
    connection.close()


class WatchingLauncher:
    """Starts pg_dump for real and reads its argv and environment through /proc while it runs."""

    def __init__(self) -> None:
        self.cmdline: bytes = b""
        self.environ: bytes = b""

    def __call__(self, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = launch(argv, env)
        # Popen returns after the exec: /proc shows pg_dump's own argv and environment.
        self.cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        self.environ = Path(f"/proc/{process.pid}/environ").read_bytes()
        return process


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(user=ROLE, password=SECRET, form=st.sampled_from(FORMS))
def test_pg_dump_logs_in_with_the_rebuilt_string_and_no_password_in_argv(
    postgres: EmbeddedPostgres,
    pgtools_dir: Path,
    target_database: str,
    user: str,
    password: str,
    form: str,
) -> None:
    assume(user != "postgres" and not user.startswith("pg_"))  # roles of the cluster itself
    url, password = url_for(postgres, user, password, form, target_database)
    create_role(postgres, user, password, target_database)
    try:
        target = registered_connection(url)
        assert target.password == password
        facts = probe(target)  # what registration checks ...
        assert facts.database_size > 0

        tools = PgTools(pgtools_dir)
        argv, env = dump_command(tools, target, "zstd:1")  # ... is what pg_dump gets
        watcher = WatchingLauncher()
        process = watcher(argv, env)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode()
        assert out.startswith(ARCHIVE_MAGIC)
        assert password.encode() not in watcher.cmdline
        assert quote(password, safe="").encode() not in watcher.cmdline
        assert f"PGPASSWORD={password}".encode() in watcher.environ.split(b"\0")
        assert password not in (redact(url) or "")
        assert password not in repr(target)
    finally:
        drop_role(postgres, user, target_database)


def test_a_server_that_asks_for_a_cleartext_password_is_refused() -> None:
    """require_auth=!password: the password is never sent in clear, even when it is right."""
    server = EmbeddedPostgres(name="cleartext").init()
    try:
        hba = server.data_dir / "pg_hba.conf"
        hba.write_text(hba.read_text().replace("scram-sha-256", "password"))
        server.start()
        with pytest.raises(ConnectionFailed) as refused:
            probe(registered_connection(server.url("postgres")))
        assert "password" in refused.value.message
        assert server.password not in refused.value.message
    finally:
        server.destroy()
