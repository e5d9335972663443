"""moto, the local stack's AWS endpoint, in a process of its own.

moto is Python: it holds the interpreter lock while it copies every uploaded
part and while it reassembles a multipart upload, seconds for a 1 GB archive
(`make bench`, item 7). In the stack's process it stalled the backup that was
uploading to it, and the API; in a process of its own it runs beside them, as
S3 runs beside Lambda.

The stack writes its key on this process's stdin (never in argv or the
environment) and keeps stdin open: end of file, when the stack stops or is
killed, stops this process too. Once listening, it prints its port.

With IAM enforced (the default; `pgbackups local --no-iam` turns it off), the
stack's key is an administrator user's in moto, and moto checks every request's
identity policies: the owner's, or a function role's session (pgbackups_local.iam).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from pgbackups_local.functions import ACCOUNT_ID
from pgbackups_local.iam import OWNER_USER
from pgbackups_local.signatures import SignedRequestsOnly, StackKey

ADMINISTRATOR = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


class OwnerAndSessions:
    """The keys moto answers: the stack's, and the sessions of the roles it assumed."""

    def __init__(self, owner: StackKey) -> None:
        self.owner = owner

    def find(self, access_key_id: str) -> StackKey | None:
        if self.owner.find(access_key_id):
            return self.owner
        from moto.sts.models import sts_backends

        for role in list(sts_backends[ACCOUNT_ID]["aws"].assumed_roles):
            if role.access_key_id == access_key_id:
                return StackKey(access_key_id, role.secret_access_key, role.session_token)
        return None


class PresignedAsSigned:
    """WSGI middleware: a presigned URL's request, as a request signed in its headers.

    moto's IAM checks need the Authorization header (a presigned GET makes it fail
    with a 500). SignedRequestsOnly, in front, has checked the URL's signature and
    expiry; this signs the same request again, in headers, with the same key, so moto
    judges the signer's policies on it (s3:GetObject on that object) as S3 does.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], keys: OwnerAndSessions) -> None:
        self.app = app
        self.keys = keys

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        params = parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
        signed = dict(params)
        if "X-Amz-Signature" in signed and "HTTP_AUTHORIZATION" not in environ:
            key = self.keys.find(signed.get("X-Amz-Credential", "").split("/")[0])
            if key is not None:
                self._sign_in_headers(environ, params, key, signed["X-Amz-Credential"])
        return self.app(environ, start_response)

    @staticmethod
    def _sign_in_headers(
        environ: dict[str, Any], params: list[tuple[str, str]], key: StackKey, credential: str
    ) -> None:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        query = urlencode(
            [(k, v) for k, v in params if not k.startswith("X-Amz-")], quote_via=quote
        )
        path = str(environ.get("PATH_INFO", "/"))
        host = str(environ.get("HTTP_HOST", "localhost"))
        request = AWSRequest(
            method=str(environ.get("REQUEST_METHOD", "GET")),
            url=f"http://{host}{quote(path)}" + (f"?{query}" if query else ""),
            headers={"host": host},
        )
        region = credential.split("/")[2]
        credentials = Credentials(
            key.access_key_id, key.secret_access_key, key.session_token or None
        )
        S3SigV4Auth(credentials, "s3", region).add_auth(request)
        environ["QUERY_STRING"] = query
        target = quote(path) + (f"?{query}" if query else "")
        for name in ("RAW_URI", "REQUEST_URI"):
            if name in environ:
                environ[name] = target
        for name, value in request.headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value


def enforce_iam(owner: StackKey) -> None:
    """The stack's key becomes an administrator's; from now on moto checks every request."""
    from moto import settings
    from moto.iam.models import iam_backends

    iam = iam_backends[ACCOUNT_ID]["aws"]
    iam.create_user("global", OWNER_USER)
    key = iam.create_access_key(OWNER_USER)
    del iam.access_keys[key.access_key_id]
    key.access_key_id, key.secret_access_key = owner.access_key_id, owner.secret_access_key
    iam.access_keys[key.access_key_id] = key
    iam.put_user_policy(OWNER_USER, "administrator", json.dumps(ADMINISTRATOR))
    # What POST /moto-api/reset-auth does, without opening that endpoint.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0


def main() -> None:
    given = json.loads(sys.stdin.readline())
    enforced = bool(given.pop("enforce_iam", False))
    key = StackKey(**given)
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if enforced:
        enforce_iam(key)
    moto_app = DomainDispatcherApplication(create_backend_app)
    if enforced:
        sessions = OwnerAndSessions(key)
        app = SignedRequestsOnly(PresignedAsSigned(moto_app, sessions), sessions)
    else:
        app = SignedRequestsOnly(moto_app, key)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)

    def stop_with_the_stack() -> None:
        sys.stdin.read()  # returns at end of file: the stack closed it, or is gone
        server.shutdown()

    threading.Thread(target=stop_with_the_stack, name="stack-watch", daemon=True).start()
    print(server.server_port, flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
