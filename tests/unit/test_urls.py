"""Connection URLs as libpq reads them: the split, the allow-list, the redaction."""

from __future__ import annotations

import re
import string
from urllib.parse import quote

import psycopg2
import psycopg2.extensions
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pgbackups.domain.errors import ConnectionFailed, ConnectionParameterNotAllowed
from pgbackups.postgres.pgtools import NOWHERE
from pgbackups.postgres.urls import (
    connection,
    database_of,
    redact,
    registered_connection,
    scrub,
    split_password,
    user_of,
)

pytestmark = pytest.mark.unit

# Any printable ASCII character, space and the URL delimiters (@ : / ? # % + &) included.
PRINTABLE_CHARS = string.digits + string.ascii_letters + string.punctuation + " "
PRINTABLE = st.text(alphabet=PRINTABLE_CHARS, min_size=1)
# What libpq takes unencoded in a URL's user info: anything but `@`, `/` and `%`.
RAW_PASSWORD = st.text(alphabet=sorted(set(PRINTABLE_CHARS) - set("@/%")), min_size=1)


def libpq(conninfo_or_url: str) -> dict[str, str]:
    return dict(psycopg2.extensions.parse_dsn(conninfo_or_url))


def check_split(url: str, password: str) -> None:
    """The split gives libpq's own reading: the password, and the rest in the connection string."""
    found = connection(url)
    assert found.password == password == libpq(url)["password"]
    rest = {k: v for k, v in libpq(url).items() if k != "password"}
    assert libpq(found.conninfo) == rest


@given(user=PRINTABLE, password=PRINTABLE)
def test_percent_encoded_user_info_splits_as_libpq_reads_it(user: str, password: str) -> None:
    url = f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@db.example:5432/shop"
    found = connection(url)
    assert found.parameters["user"] == user
    check_split(url, password)


@given(password=PRINTABLE)
def test_a_query_password_splits_as_libpq_reads_it(password: str) -> None:
    url = f"postgresql://app@db.example/shop?sslmode=require&password={quote(password, safe='')}"
    check_split(url, password)
    assert libpq(connection(url).conninfo)["sslmode"] == "require"


@given(password=RAW_PASSWORD)
def test_an_unencoded_password_splits_as_libpq_reads_it(password: str) -> None:
    url = f"postgresql://app:{password}@db.example/shop"
    check_split(url, password)


@given(password=PRINTABLE)
def test_a_plus_in_a_query_password_is_a_plus(password: str) -> None:
    # Python's query parser turns `+` into a space; libpq does not. Unencoded `%`, `&`
    # and `=` are not values libpq accepts in a query.
    assume(not set(password) & set("%&="))
    url = f"postgresql://app@db.example/shop?password={password.replace(' ', '%20')}"
    assert connection(url).password == password


@given(password=PRINTABLE.filter(lambda p: len(p) >= 6))
def test_the_password_is_never_in_a_redacted_url(password: str) -> None:
    shown = "postgresql://app:***@db.example:5432/shop"
    assume(password not in shown)
    # A password is masked where it stands as a word: not inside the message's own words.
    assume(password not in "FATAL: password and rejected")
    for url in (
        f"postgresql://app:{quote(password, safe='')}@db.example:5432/shop",
        f"postgresql://app@db.example:5432/shop?password={quote(password, safe='')}",
    ):
        assert redact(url) == shown
        assert password not in repr(registered_connection(url))
        message = f"FATAL: password {password} and {quote(password, safe='')} rejected"
        assert password not in scrub(message, url)


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgresql://u:Hash#Secret1@db.example/shop", "Hash#Secret1"),
        ("postgresql://u:Ask?Secret2@db.example/shop", "Ask?Secret2"),
        ("postgres://app@db.example/shop?password=Plus+Secret3", "Plus+Secret3"),
    ],
)
def test_the_urls_of_the_review_keep_their_password_out_of_the_connection_string(
    url: str, password: str
) -> None:
    conninfo, found = split_password(url)
    assert found == password
    assert password not in conninfo
    assert libpq(conninfo)["dbname"] == "shop" and libpq(conninfo)["host"] == "db.example"


def test_options_survive_the_split_intact() -> None:
    url = "postgres://app@db.example/shop?password=Plus+Secret3&options=-c%20statement_timeout%3D0"
    target = registered_connection(url)
    assert target.password == "Plus+Secret3"
    assert libpq(target.conninfo)["options"] == "-c statement_timeout=0"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("passfile=/root/.pgpass", "passfile"),
        ("sslrootcert=/etc/ssl/private/x", "sslrootcert"),
        ("sslcert=/tmp/c.crt", "sslcert"),
        ("sslkey=/tmp/c.key", "sslkey"),
        ("service=prod", "service"),
        ("host=/var/run/postgresql", "host"),
        ("host=@abstract", "host"),
        ("hostaddr=10.0.0.1", "hostaddr"),
        ("options=-c%20log_directory%3D/tmp", "options"),
        ("require_auth=password", "require_auth"),
        ("require_auth=!md5", "require_auth"),
        ("sslmode=bogus", "sslmode"),
        ("krbsrvname=x", "krbsrvname"),
        ("sslcrl=/tmp/crl", "sslcrl"),
        ("requirepeer=postgres", "requirepeer"),
    ],
)
def test_parameters_that_reach_our_files_or_sockets_are_refused_by_name(
    query: str, parameter: str
) -> None:
    with pytest.raises(ConnectionParameterNotAllowed) as refused:
        registered_connection(f"postgresql://app:pw@db.example/shop?{query}")
    assert refused.value.details == {"parameter": parameter}
    assert parameter in refused.value.message
    assert "pw" not in refused.value.message.replace("pgbackups", "")


def test_a_url_without_a_host_would_use_a_local_socket_and_is_refused() -> None:
    with pytest.raises(ConnectionParameterNotAllowed, match="local socket"):
        registered_connection("postgresql:///shop")


def test_allowed_parameters_pass_and_files_are_pinned_nowhere() -> None:
    target = registered_connection(
        "postgresql://app:pw@db1.example,db2.example:5433/shop?sslmode=verify-full"
        "&sslrootcert=system&connect_timeout=5&application_name=nightly"
        "&target_session_attrs=read-write&options=-c%20statement_timeout%3D0"
    )
    read = libpq(target.conninfo)
    assert read["sslrootcert"] == "system"
    assert read["passfile"] == read["sslcert"] == read["sslkey"] == NOWHERE
    assert read["require_auth"] == "!password"
    assert read["host"] == "db1.example,db2.example"
    assert "password" not in read


def test_require_auth_that_refuses_cleartext_is_kept() -> None:
    read = libpq(registered_connection("postgresql://a@h/d?require_auth=scram-sha-256").conninfo)
    assert read["require_auth"] == "scram-sha-256"


def test_a_url_libpq_cannot_read_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConnectionFailed) as refused:
        connection("postgresql://u:Sec%ZZret@h/d")
    assert "Sec" not in refused.value.message
    assert redact("postgresql://u:Sec%ZZret@h/d") == "<invalid url>"


def test_another_scheme_is_refused() -> None:
    with pytest.raises(ConnectionFailed, match="must start with postgres://"):
        registered_connection("mysql://u:p@h/d")


def test_scrub_masks_every_form_of_a_password() -> None:
    url = "postgresql://app:p%40ss@db/shop"
    text = "failed for p@ss, p%40ss; password=leak password='a b'"
    assert scrub(text, url) == "failed for ***, ***; password=*** password=***"


@pytest.mark.parametrize(
    ("url", "user", "database"),
    [
        ("postgres://alice@h/shop?user=bob", "bob", "shop"),  # libpq: the query wins
        ("postgres://h/?dbname=shop", "postgres", "shop"),
        ("postgres://bob@h", "bob", "bob"),  # libpq's default database is the role's name
        ("postgresql://a%40b:pw@h/sh%2Fop", "a@b", "sh/op"),
    ],
)
def test_the_user_and_database_of_a_url_are_libpqs(url: str, user: str, database: str) -> None:
    assert (user_of(url), database_of(url)) == (user, database)


# Passwords with an unencoded `/` or `@`: libpq reads pieces of them as host, port, database.
MISREAD_URLS = {
    "se/cret": "postgres://shop:se/cret@127.0.0.1:5432/db",
    "Tr0ub@dor&3": "postgres://shop:Tr0ub@dor&3@127.0.0.1:5432/db",
}


def shows_a_piece_of(password: str, message: str) -> bool:
    """Whether `message` shows a piece of `password` as a word of its own (`se` of
    `se/cret` is in `database` too)."""
    return any(
        re.search(rf"(?<![0-9A-Za-z]){re.escape(piece)}(?![0-9A-Za-z])", message)
        for piece in re.split(r"[@/]", password)
    )


@pytest.mark.parametrize("password", MISREAD_URLS)
def test_a_misread_url_shows_nothing_of_itself_and_says_how_to_encode(password: str) -> None:
    target = registered_connection(MISREAD_URLS[password])
    error = psycopg2.OperationalError(
        f'could not translate host name "{target.parameters["host"]}" to address; '
        f'invalid integer value "{target.parameters.get("port")}" for connection option "port"; '
        f'database "{target.parameters["dbname"]}" does not exist'
    )
    message = target.failure("cannot connect to", error)
    assert not shows_a_piece_of(password, message)
    assert "127.0.0.1" not in message
    assert "must be percent-encoded" in message and "p%40ss%2Fw%3Ard" in message
    assert redact(MISREAD_URLS[password]) == target.redacted
    assert not shows_a_piece_of(password, scrub(str(error), MISREAD_URLS[password]))


def test_a_short_password_does_not_garble_the_words_that_hold_it() -> None:
    url = "postgresql://app:a@db.example/shop"
    text = 'could not translate host name "db.example" to address: a'
    assert scrub(text, url) == 'could not translate host name "db.example" to address: ***'
    assert registered_connection(url).scrub(text).startswith("could not translate host name")
