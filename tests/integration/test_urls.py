"""Registered URLs against a real server: pg_dump logs in with the rebuilt connection
string, and the password is only ever in its environment, never in its argv."""

from __future__ import annotations

import contextlib
import json
import re
import string
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from psycopg2 import sql

from pgbackups.domain.errors import ConnectionFailed
from pgbackups.postgres.dump import ARCHIVE_MAGIC, dump_command
from pgbackups.postgres.pgtools import PgTools, launch
from pgbackups.postgres.probe import probe
from pgbackups.postgres.urls import redact, registered_connection
from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, LambdaContext, load_event, load_function

pytestmark = pytest.mark.integration

PRINTABLE_CHARS = string.digits + string.ascii_letters + string.punctuation + " "
SECRET = st.text(alphabet=PRINTABLE_CHARS, min_size=8, max_size=40)
ROLE = st.text(alphabet=PRINTABLE_CHARS, min_size=1, max_size=30)
# The three ways a password reaches a URL: encoded in the user info, as ?password=,
# and unencoded in the user info where libpq accepts it (no @, / or %).
FORMS = ("userinfo", "query", "raw")
# Role names PostgreSQL keeps for itself (CREATE ROLE refuses them), and the cluster's own.
RESERVED_ROLES = {"postgres", "public", "none", "current_user", "session_user", "current_role"}


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


def _execute(server: EmbeddedPostgres, database: str, *statements: sql.Composable) -> None:
    # psycopg2's `with connection` ends the transaction, not the connection: close it too,
    # or every example keeps one of the shared server's connections.
    with (
        contextlib.closing(psycopg2.connect(server.url(database))) as connection,
        connection,
        connection.cursor() as cursor,
    ):
        for statement in statements:
            cursor.execute(statement)


def create_role(server: EmbeddedPostgres, user: str, password: str, database: str) -> None:
    role = sql.Identifier(user)
    _execute(
        server,
        "postgres",
        sql.SQL("DROP ROLE IF EXISTS {}").format(role),
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password)),
    )
    _execute(server, database, sql.SQL("GRANT SELECT ON t TO {}").format(role))


def drop_role(server: EmbeddedPostgres, user: str, database: str) -> None:
    role = sql.Identifier(user)
    _execute(
        server,
        database,
        sql.SQL("REVOKE ALL ON t FROM {}").format(role),
        sql.SQL("DROP ROLE {}").format(role),
    )


def seen_in_proc(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """argv and environment of a running process, as any user of the host can list them."""
    proc = Path(f"/proc/{process.pid}")
    # Popen returns once the exec has begun; the new argv shows a moment later.
    deadline = time.monotonic() + 10
    while not (cmdline := (proc / "cmdline").read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.01)
    environ = (proc / "environ").read_bytes()
    assert process.poll() is None, "read while it runs"
    return cmdline, environ


@contextlib.contextmanager
def table_locked(server: EmbeddedPostgres, database: str) -> Iterator[None]:
    """pg_dump waits on this lock: it is still running while /proc is read."""
    connection = psycopg2.connect(server.url(database))
    try:
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        connection.rollback()
        connection.close()


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is never luck
    suppress_health_check=[HealthCheck.function_scoped_fixture],
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
    assume(user not in RESERVED_ROLES and not user.startswith("pg_"))  # PostgreSQL's own
    assume(password not in user)  # the user name is in argv, as it should be
    url, password = url_for(postgres, user, password, form, target_database)
    create_role(postgres, user, password, target_database)
    try:
        target = registered_connection(url)
        assert target.password == password
        facts = probe(target)  # what registration checks ...
        assert facts.database_size > 0

        tools = PgTools(pgtools_dir)
        argv, env = dump_command(tools, target, "zstd:1")  # ... is what pg_dump gets
        with table_locked(postgres, target_database):
            process = launch(argv, env)
            cmdline, environ = seen_in_proc(process)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode()
        assert out.startswith(ARCHIVE_MAGIC)
        # pg_dump's argv is the same whatever the password: it cannot carry it. (A
        # substring test alone would fail on a password such as "pgbackup", which the
        # fixed text of the command line contains.)
        other_url, _ = url_for(postgres, user, "Another-Secret-42", form, target_database)
        expected, _ = dump_command(tools, registered_connection(other_url), "zstd:1")
        assert cmdline.split(b"\0")[:-1] == [arg.encode() for arg in expected]
        assert cmdline.split(b"\0")[0].endswith(b"/pg_dump")
        assert f"PGPASSWORD={password}".encode() in environ.split(b"\0")
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


def register(url: str, context: LambdaContext) -> tuple[int, dict[str, object]]:
    """The API's answer to registering `url` (the status and the JSON body)."""
    event = load_event("api-create-database")
    event["body"] = json.dumps({"name": "shop", "url": url})
    event["headers"]["content-type"] = "application/json"
    response = load_function("api").handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def shows_a_piece_of(password: str, text: str) -> bool:
    """Whether `text` shows a piece of `password` (split where libpq split it) as a word
    of its own: `se` of `se/cret` is also in `database`, which is fine."""
    return any(
        re.search(rf"(?<![0-9A-Za-z]){re.escape(piece)}(?![0-9A-Za-z])", text)
        for piece in re.split(r"[@/]", password)
    )


@pytest.mark.parametrize("password", ["se/cret", "Tr0ub@dor&3"])
def test_registering_a_url_with_an_unencoded_password_echoes_none_of_it(
    aws: AwsStack, lambda_context: LambdaContext, postgres: EmbeddedPostgres, password: str
) -> None:
    status, body = register(
        f"postgres://shop:{password}@127.0.0.1:{postgres.port}/shop", lambda_context
    )
    assert status == 422
    assert not shows_a_piece_of(password, json.dumps(body))
    message = body["error"]["message"]  # type: ignore[index]
    assert message.startswith("url: cannot connect to postgres://*** (")
    assert "must be percent-encoded" in message and "p%40ss%2Fw%3Ard" in message


def test_a_short_password_is_masked_without_garbling_the_answer(
    aws: AwsStack, lambda_context: LambdaContext, postgres: EmbeddedPostgres
) -> None:
    status, body = register(
        f"postgresql://postgres:a@127.0.0.1:{postgres.port}/postgres", lambda_context
    )
    assert status == 422
    message = body["error"]["message"]  # type: ignore[index]
    assert message.startswith(
        f"url: cannot connect to postgresql://postgres:***@127.0.0.1:{postgres.port}/postgres: "
    )
    assert 'password authentication failed for user "postgres"' in message
