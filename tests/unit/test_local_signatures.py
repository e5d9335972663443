"""The local stack's signature check, against requests botocore itself signs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pgbackups_local.signatures import SignatureRefused, StackKey, verify

pytestmark = pytest.mark.unit

KEY = StackKey.generate()
OTHER = StackKey.generate()
BODY = b'{"SecretId": "pgbackups/local/api-token"}'


def signed(key: StackKey, body: bytes = BODY) -> tuple[str, dict[str, str]]:
    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:5000/",
        data=body,
        headers={"X-Amz-Target": "secretsmanager.GetSecretValue"},
    )
    SigV4Auth(
        Credentials(key.access_key_id, key.secret_access_key), "secretsmanager", "eu-west-1"
    ).add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    return "/", headers | {"host": "127.0.0.1:5000"}


def presigned(key: StackKey, expires: int = 300) -> tuple[str, dict[str, str]]:
    request = AWSRequest(method="GET", url="http://127.0.0.1:5000/bucket/databases/a%20b.pgsql")
    S3SigV4QueryAuth(
        Credentials(key.access_key_id, key.secret_access_key), "s3", "eu-west-1", expires=expires
    ).add_auth(request)
    parts = urlsplit(request.url)
    return f"{parts.path}?{parts.query}", {"host": "127.0.0.1:5000"}


def test_a_request_signed_with_the_stack_key_passes() -> None:
    target, headers = signed(KEY)
    verify("POST", target, headers, lambda: BODY, KEY)


def test_another_key_is_refused() -> None:
    target, headers = signed(OTHER)
    with pytest.raises(SignatureRefused, match="not signed with this stack's key"):
        verify("POST", target, headers, lambda: BODY, KEY)


def test_a_tampered_body_or_signature_is_refused() -> None:
    target, headers = signed(KEY)
    with pytest.raises(SignatureRefused, match="does not match"):
        verify("POST", target, headers, lambda: b'{"SecretId": "another"}', KEY)
    forged = {**headers, "Authorization": headers["Authorization"][:-4] + "0000"}
    with pytest.raises(SignatureRefused, match="does not match"):
        verify("POST", target, forged, lambda: BODY, KEY)


def test_an_unsigned_request_is_refused() -> None:
    target, headers = signed(KEY)
    del headers["Authorization"]
    with pytest.raises(SignatureRefused, match="not signed"):
        verify("POST", target, headers, lambda: BODY, KEY)


def test_an_old_signature_is_refused() -> None:
    target, headers = signed(KEY)
    later = datetime.now(UTC) + timedelta(minutes=16)
    with pytest.raises(SignatureRefused, match="15 minutes"):
        verify("POST", target, headers, lambda: BODY, KEY, now=later)


def test_a_presigned_url_passes_until_it_expires() -> None:
    target, headers = presigned(KEY, expires=300)
    verify("GET", target, headers, lambda: b"", KEY)
    with pytest.raises(SignatureRefused, match="expired"):
        verify("GET", target, headers, lambda: b"", KEY, now=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(SignatureRefused, match="does not match"):
        verify("GET", target.replace("a%20b", "other"), headers, lambda: b"", KEY)
    other_target, _ = presigned(OTHER)
    with pytest.raises(SignatureRefused, match="stack's key"):
        verify("GET", other_target, headers, lambda: b"", KEY)


def test_a_role_session_is_accepted_with_its_token_only() -> None:
    session = StackKey("ASIA" + "S" * 16, "session-secret", "the-session-token")
    request = AWSRequest(
        method="POST", url="http://127.0.0.1:5000/", data=BODY,
        headers={"X-Amz-Target": "secretsmanager.GetSecretValue"},
    )  # fmt: skip
    credentials = Credentials(session.access_key_id, session.secret_access_key, "other-token")
    SigV4Auth(credentials, "secretsmanager", "eu-west-1").add_auth(request)
    forged = {name: str(value) for name, value in request.headers.items()}
    forged["host"] = "127.0.0.1:5000"
    with pytest.raises(SignatureRefused, match="security token"):
        verify("POST", "/", forged, lambda: BODY, session)

    request = AWSRequest(
        method="POST", url="http://127.0.0.1:5000/", data=BODY,
        headers={"X-Amz-Target": "secretsmanager.GetSecretValue"},
    )  # fmt: skip
    credentials = Credentials(
        session.access_key_id, session.secret_access_key, session.session_token
    )
    SigV4Auth(credentials, "secretsmanager", "eu-west-1").add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    assert (
        verify("POST", "/", headers | {"host": "127.0.0.1:5000"}, lambda: BODY, session) == session
    )
