"""Only the stack's owner may use its AWS endpoint and its Lambda invoke endpoint.

Both listen on 127.0.0.1, which every user of the machine can reach. So each
request must carry an AWS Signature Version 4 made with the stack's own key: a
random access key kept in stack.json (mode 0600) and in this process's
environment, nowhere else. The signature is checked the way AWS checks it, with
botocore's own signer: in the Authorization header, or in the query of a
presigned URL (the archive downloads).

moto has an IAM authentication mode of its own, but it leaves its /moto-api/
endpoints open (data.json dumps every secret and object, reset-auth turns the
checks off) and lets presigned URLs through unchecked; so the check is done here,
in front of moto, and /moto-api/ is refused outright.
"""

from __future__ import annotations

import hmac
import io
import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
# AWS refuses a signature made more than 15 minutes away from its own clock.
CLOCK_SKEW = timedelta(minutes=15)
AMZ_DATE = "%Y%m%dT%H%M%SZ"


class SignatureRefused(Exception):
    """The request is not signed with the stack's key; the message says why."""


@dataclass(frozen=True)
class StackKey:
    access_key_id: str
    secret_access_key: str
    # Set for a role session's temporary credentials (sent as X-Amz-Security-Token).
    session_token: str = ""

    @classmethod
    def generate(cls) -> StackKey:
        """A fresh key, shaped like an IAM user's (AKIA + 16, and 40 characters)."""
        alphabet = string.ascii_uppercase + string.digits
        return cls(
            access_key_id="AKIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
            secret_access_key=secrets.token_urlsafe(30),
        )

    def environment(self) -> dict[str, str]:
        environment = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        if self.session_token:
            environment["AWS_SESSION_TOKEN"] = self.session_token
        return environment

    def find(self, access_key_id: str) -> StackKey | None:
        """This key if it is the one named (a key is the smallest set of keys)."""
        return self if hmac.compare_digest(access_key_id, self.access_key_id) else None


class Keys(Protocol):
    """The keys an endpoint accepts: the stack's own, and its functions' role sessions."""

    def find(self, access_key_id: str) -> StackKey | None: ...


def _fields(authorization: str) -> dict[str, str]:
    """`Credential=…, SignedHeaders=…, Signature=…` of an Authorization header."""
    found = {}
    for part in authorization.removeprefix(ALGORITHM).split(","):
        name, _, value = part.strip().partition("=")
        found[name] = value
    return found


def _check_time(amz_date: str, now: datetime, expires: int | None = None) -> None:
    try:
        signed_at = datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRefused("the request's X-Amz-Date is not a valid time") from None
    if expires is not None:
        if now > signed_at + timedelta(seconds=expires):
            raise SignatureRefused("the presigned URL has expired")
        if signed_at - now > CLOCK_SKEW:
            raise SignatureRefused("the presigned URL is signed in the future")
    elif abs(now - signed_at) > CLOCK_SKEW:
        raise SignatureRefused("the request was signed more than 15 minutes ago")


def _scope(credential: str, keys: Keys, token: str | None) -> tuple[StackKey, str, str]:
    """(key, region, service) of a credential scope made with one of the stack's keys."""
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureRefused("the request's credential scope is malformed")
    key = keys.find(parts[0])
    if key is None:
        raise SignatureRefused("the request is not signed with this stack's key")
    # A session's key is valid only with its token, as on AWS.
    if not hmac.compare_digest(token or "", key.session_token):
        raise SignatureRefused("the request's security token does not match its key")
    return key, parts[2], parts[3]


def verify(
    method: str,
    target: str,
    headers: Mapping[str, str],
    read_body: Callable[[], bytes],
    keys: Keys,
    *,
    now: datetime | None = None,
) -> StackKey:
    """The key of `keys` the request (`target`: its raw path and query, as sent) is
    signed with; SignatureRefused if none. `read_body` is called only when the
    signature covers a body that its headers do not hash (every service but S3)."""
    now = now or datetime.now(UTC)
    lowered = {name.lower(): value for name, value in headers.items()}
    path, _, query = target.partition("?")
    authorization = lowered.get("authorization", "")
    if authorization.startswith(ALGORITHM + " "):
        fields = _fields(authorization)
        key, region, service = _scope(
            fields.get("Credential", ""), keys, lowered.get("x-amz-security-token")
        )
        _check_time(lowered.get("x-amz-date", ""), now)
        signed = fields.get("SignedHeaders", "").split(";")
        body = b"" if "x-amz-content-sha256" in lowered else read_body()
        request = AWSRequest(
            method=method,
            url=target,
            headers={name: lowered[name] for name in signed if name in lowered},
            data=body,
        )
        request.context["timestamp"] = lowered.get("x-amz-date", "")
        auth: SigV4Auth = (S3SigV4Auth if service == "s3" else SigV4Auth)(
            Credentials(key.access_key_id, key.secret_access_key), service, region
        )
        given = fields.get("Signature", "")
    else:
        params = dict(parse_qsl(query, keep_blank_values=True))
        if params.get("X-Amz-Algorithm") != ALGORITHM or "X-Amz-Signature" not in params:
            raise SignatureRefused("the request is not signed")
        key, region, service = _scope(
            params.get("X-Amz-Credential", ""), keys, params.get("X-Amz-Security-Token")
        )
        try:
            expires = int(params.get("X-Amz-Expires", ""))
        except ValueError:
            raise SignatureRefused("the presigned URL has no valid X-Amz-Expires") from None
        _check_time(params.get("X-Amz-Date", ""), now, expires)
        signed = unquote(params.get("X-Amz-SignedHeaders", "")).split(";")
        # The signature covers the query without itself, as the client wrote it.
        kept = [p for p in query.split("&") if not p.startswith("X-Amz-Signature=")]
        request = AWSRequest(
            method=method,
            url=f"{path}?{'&'.join(kept)}",
            headers={name: lowered[name] for name in signed if name in lowered},
        )
        request.context["timestamp"] = params["X-Amz-Date"]
        auth = S3SigV4QueryAuth(
            Credentials(key.access_key_id, key.secret_access_key), service, region, expires=expires
        )
        given = params["X-Amz-Signature"]
    expected = auth.signature(
        auth.string_to_sign(request, auth.canonical_request(request)), request
    )
    if not hmac.compare_digest(given, expected):
        raise SignatureRefused("the request's signature does not match this stack's key")
    return key


# -- in front of moto ------------------------------------------------------------------------


def _wsgi_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        name[5:].replace("_", "-").lower(): str(value)
        for name, value in environ.items()
        if name.startswith("HTTP_")
    }
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = str(environ[name])
    return headers


class SignedRequestsOnly:
    """WSGI middleware: moto answers only requests signed with one of the stack's keys."""

    def __init__(self, app: Callable[..., Iterable[bytes]], keys: Keys) -> None:
        self.app = app
        self.keys = keys

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
            return self._refuse(start_response, "moto's own API is not served by this stack")
        # The path and query exactly as the client sent (and signed) them.
        target = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
        if not target:
            query = environ.get("QUERY_STRING")
            target = str(environ.get("PATH_INFO", "/")) + (f"?{query}" if query else "")

        def read_body() -> bytes:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
            return body

        try:
            verify(
                str(environ.get("REQUEST_METHOD", "GET")),
                target,
                _wsgi_headers(environ),
                read_body,
                self.keys,
            )
        except SignatureRefused as refused:
            return self._refuse(start_response, str(refused))
        return self.app(environ, start_response)

    @staticmethod
    def _refuse(start_response: Callable[..., Any], reason: str) -> Iterable[bytes]:
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
            f"<Message>{reason}</Message></Error>"
        ).encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]
