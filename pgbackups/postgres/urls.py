"""PostgreSQL connection URLs: the one place that reads them, with libpq's own parser.

Python's URL parser and libpq disagree on URLs that people do write (an
unencoded `#` or `?` in a password, `+` in a query value), so every reading
here goes through `psycopg2.extensions.parse_dsn`, which is libpq's
`PQconninfoParse`: the registration check, pg_dump's connection string and the
redaction see the same user, host, database and password.

A URL becomes a `Connection`: a password-free keyword/value connection string,
safe on a command line, and the password, which goes to PostgreSQL tools through
PGPASSWORD in the child's environment only.

URLs that users register run on our side, so `registered_connection` also
refuses the libpq parameters that would reach the function's own files or local
sockets (passfile, sslcert, service, host=/socket/dir, hostaddr, ...), and pins
what a default would otherwise read from the running user's home directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

import psycopg2
import psycopg2.extensions

from pgbackups.domain.errors import ConnectionFailed, ConnectionParameterNotAllowed
from pgbackups.postgres.pgtools import NOWHERE

SCHEMES = ("postgres://", "postgresql://")


# What a registered URL may set. Everything else is refused by name: a parameter
# libpq adds in a future version is refused until someone reads what it does.
ALLOWED_PARAMETERS = frozenset(
    {
        "host",
        "port",
        "dbname",
        "user",
        "password",
        "connect_timeout",
        "application_name",
        "fallback_application_name",
        "client_encoding",
        "options",
        "target_session_attrs",
        "load_balance_hosts",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "sslmode",
        "sslnegotiation",
        "sslcompression",
        "sslsni",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "sslrootcert",
        "channel_binding",
        "require_auth",
    }
)
SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
# Refuse cleartext password authentication: a server (or anyone between us and a
# server, without verify-full) could ask for the password in clear. libpq >= 16.
NO_CLEARTEXT_PASSWORD = "!password"  # noqa: S105 (a require_auth value, not a secret)

# What messages say instead of a URL that libpq read in a way that can put part of the
# password in its host, port or database (an unencoded @ or / in the password).
PERCENT_ENCODING = (
    "a password with @ / : ? or # must be percent-encoded in a URL, e.g. the password "
    "p@ss/w:rd as postgresql://shop:p%40ss%2Fw%3Ard@db.example.com:5432/shop"
)
MISREAD = f"the URL does not read as user:password@host:port/database: {PERCENT_ENCODING}"

# Files libpq reads by default from the running user's home directory: pinned to
# nowhere in every registered connection string, so pg_dump and the probe, which
# get that same string, cannot send the function's own credentials anywhere.
PINNED_FILES = ("passfile", "sslcert", "sslkey", "sslrootcert")


@dataclass(frozen=True)
class Connection:
    """A URL as libpq reads it: a connection string without the password, and the password."""

    conninfo: str  # keyword/value form: safe in argv
    password: str | None = field(repr=False)
    parameters: Mapping[str, str] = field(repr=False)  # libpq's reading, password included
    scheme: str = "postgresql"

    def __repr__(self) -> str:
        return f"Connection({self.redacted!r})"

    @property
    def redacted(self) -> str:
        """`postgresql://user:***@host:port/db`: how messages name this target (nothing of
        a URL that may hold part of its password: then how to write it)."""
        return _display(self.parameters, self.scheme)

    @property
    def user(self) -> str:
        """The role it connects as, `postgres` when the URL names none."""
        return self.parameters.get("user") or "postgres"

    @property
    def database(self) -> str:
        """The database it connects to: libpq's default is the role's name."""
        return self.parameters.get("dbname") or self.user

    def scrub(self, text: str) -> str:
        """`text` without this connection's password (libpq's or a server's words may
        quote it, or quote the parts of a URL that hold some of it)."""
        return _scrub(text, self.parameters)

    def failure(self, action: str, error: Exception) -> str:
        """`cannot connect to <target>: <why>`, with nothing of the password."""
        return f"{action} {self.redacted}: {self.scrub(' '.join(str(error).split()))}"


def parse(url: str) -> dict[str, str]:
    """libpq's reading of a postgres:// URL; ConnectionFailed with the reason if it has none."""
    if not url.startswith(SCHEMES):
        raise ConnectionFailed("the URL must start with postgres:// or postgresql://")
    try:
        return dict(psycopg2.extensions.parse_dsn(url))
    except psycopg2.ProgrammingError as error:
        # libpq's message quotes the token it choked on, which may be the password.
        reason = " ".join(str(error).split()).removeprefix("invalid dsn: ")
        reason = re.sub(r'"[^"]*"', '"…"', reason)
        raise ConnectionFailed(f"the URL is not valid: {reason} ({PERCENT_ENCODING})") from None


def _scheme(url: str) -> str:
    return url.split("://", 1)[0]


def _build(parameters: Mapping[str, str], scheme: str) -> Connection:
    without_password = {k: v for k, v in parameters.items() if k != "password"}
    return Connection(
        conninfo=psycopg2.extensions.make_dsn(**without_password),
        password=parameters.get("password"),
        parameters=dict(parameters),
        scheme=scheme,
    )


def connection(url: str) -> Connection:
    """Any postgres:// URL, split for a PostgreSQL tool of the user's own (the CLI's restore)."""
    return _build(parse(url), _scheme(url))


def split_password(url: str) -> tuple[str, str | None]:
    """The connection string without the password (for argv) and the password (for PGPASSWORD)."""
    found = connection(url)
    return found.conninfo, found.password


def registered_connection(url: str) -> Connection:
    """A URL that a user registers: only the allowed parameters, files pinned, no cleartext
    password. ConnectionParameterNotAllowed names the first parameter refused."""
    parameters = parse(url)
    for name, value in parameters.items():
        if name not in ALLOWED_PARAMETERS:
            raise ConnectionParameterNotAllowed(
                f"the URL sets {name}, which a registered URL may not: such parameters "
                "can reach the backup function's own files, credentials or sockets "
                "(the API reference's Connection URLs lists those allowed)",
                parameter=name,
            )
        _check_value(name, value)
    if not parameters.get("host"):
        raise ConnectionParameterNotAllowed(
            "the URL names no host: pgbackups connects over TCP only, never to a local socket",
            parameter="host",
        )
    pinned = {name: NOWHERE for name in PINNED_FILES}
    if parameters.get("sslrootcert") == "system":
        del pinned["sslrootcert"]
    return _build(
        {
            **parameters,
            "require_auth": parameters.get("require_auth", NO_CLEARTEXT_PASSWORD),
            **pinned,
        },
        _scheme(url),
    )


def _refuse(name: str, why: str) -> ConnectionParameterNotAllowed:
    return ConnectionParameterNotAllowed(f"the URL's {name} {why}", parameter=name)


def _check_value(name: str, value: str) -> None:
    if name == "host":
        for host in value.split(","):
            if not host or host.startswith(("/", "@")):
                raise _refuse(
                    "host", "must be a host name or address: local sockets are not allowed"
                )
    elif name == "dbname" and (value.startswith(SCHEMES) or "=" in value):
        raise _refuse("dbname", "must be a database name, not a connection string")
    elif name == "options" and "/" in value:
        raise _refuse("options", "must not name files or directories")
    elif name == "sslmode" and value not in SSL_MODES:
        raise _refuse("sslmode", f"must be one of {', '.join(sorted(SSL_MODES))}")
    elif name == "sslrootcert" and value != "system":
        raise _refuse("sslrootcert", "may only be `system` (the system's certificate authorities)")
    elif name == "require_auth" and not _refuses_cleartext(value):
        raise _refuse("require_auth", "must not allow cleartext password authentication")


def _refuses_cleartext(require_auth: str) -> bool:
    methods = [method.strip() for method in require_auth.split(",")]
    if all(method.startswith("!") for method in methods):
        return "!password" in methods
    return "password" not in methods and not any(m.startswith("!") for m in methods)


def user_of(url: str) -> str:
    """The role a URL connects as, as libpq reads it (`postgres` when it names none)."""
    return connection(url).user


def database_of(url: str) -> str:
    """The database a URL names, as libpq reads it (its default: the role's name)."""
    return connection(url).database


# -- messages -------------------------------------------------------------------------


def misread(parameters: Mapping[str, str]) -> bool:
    """Whether libpq's reading can have put part of a password elsewhere than in the
    password: an unencoded `@` or `/` in it makes a host, port or database of its pieces."""
    named = [parameters.get(key) or "" for key in ("host", "port", "dbname", "user")]
    ports = (parameters.get("port") or "").split(",")
    return any("@" in value for value in named) or not all(port.isdigit() for port in ports if port)


def _display(parameters: Mapping[str, str], scheme: str = "postgresql") -> str:
    if misread(parameters):
        return f"{scheme}://*** ({MISREAD})"
    hosts = (parameters.get("host") or "").split(",")
    ports = (parameters.get("port") or "").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    addresses = []
    for host, port in zip(hosts, ports + [""] * len(hosts), strict=False):
        shown = f"[{host}]" if ":" in host else quote(host, safe=".-_~")
        addresses.append(f"{shown}:{port}" if port else shown)
    user = parameters.get("user")
    userinfo = f"{quote(user, safe='')}:***@" if user else ""
    database = quote(parameters.get("dbname") or "", safe="")
    return f"{scheme}://{userinfo}{','.join(addresses)}/{database}"


def redact(url: str | None) -> str | None:
    """`postgresql://user:***@host:port/db`, as libpq reads `url`: for messages naming a target."""
    if url is None:
        return None
    try:
        parameters = parse(url)
    except ConnectionFailed:
        return "<invalid url>"
    return _display(parameters, _scheme(url))


def _spellings(password: str | None) -> set[str]:
    """A password as libpq reads it, and the ways a URL may have spelt it."""
    if not password:
        return set()
    return {password, quote(password, safe=""), quote(password), quote_plus(password)}


def _secrets(parameters: Mapping[str, str]) -> set[str]:
    """What a message must not show of a URL: its password, and when libpq misread it,
    every part that may hold a piece of the password."""
    secrets = _spellings(parameters.get("password"))
    if misread(parameters):
        for key in ("host", "port", "dbname", "user"):
            secrets |= _spellings(parameters.get(key))
    return secrets


def _scrub(text: str, parameters: Mapping[str, str]) -> str:
    """`text` with the secrets of one URL masked where they stand as words of their own
    (a password `a` must not turn `translate` into `tr***nsl***te`)."""
    for secret in sorted(_secrets(parameters), key=len, reverse=True):
        text = re.sub(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", "***", text)
    if misread(parameters):
        text = re.sub(r'"[^"]*"', '"…"', text)
    return re.sub(r"password=('(?:[^'\\]|\\.)*'|[^\s&]+)", "password=***", text)


def scrub(text: str, *urls: str | None) -> str:
    """`text` with the secrets of `urls` masked: for messages built from a server's words."""
    for url in filter(None, urls):
        try:
            text = _scrub(text, parse(url))
        except ConnectionFailed:
            continue
    return text
