"""The bearer token check of the HTTP API's Lambda authorizer.

The token is generated at deploy time into Secrets Manager; it is read through
powertools parameters (cached for `max_age` seconds) and compared in constant
time. A token that does not match makes the secret be read again before it is
refused, so a rotated token works at once on a warm instance (and its refusal is
not what API Gateway caches); at most once per REFRESH_AFTER_REFUSAL_SECONDS, so
a stream of wrong tokens costs Secrets Manager little. Neither the header nor
the token is ever logged.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Mapping

from aws_lambda_powertools.utilities.parameters import SecretsProvider

TOKEN_CACHE_SECONDS = 300
REFRESH_AFTER_REFUSAL_SECONDS = 5.0
_SCHEME = "bearer"


class AuthorizerSettingsError(RuntimeError):
    """TOKEN_SECRET_ID is missing, or its secret holds no token."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>`, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != _SCHEME or not token:
        return None
    return token


class TokenAuthorizer:
    def __init__(
        self,
        secret_id: str,
        provider: SecretsProvider,
        max_age: int = TOKEN_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret_id = secret_id
        self._provider = provider
        self._max_age = max_age
        self._clock = clock
        self._refreshed_at: float | None = None  # the last re-read a refusal made

    @staticmethod
    def secret_id_from_env(environ: Mapping[str, str] | None = None) -> str:
        env = os.environ if environ is None else environ
        secret_id = env.get("TOKEN_SECRET_ID")
        if not secret_id:
            raise AuthorizerSettingsError("missing environment variable: TOKEN_SECRET_ID")
        return secret_id

    def _token(self, *, fresh: bool = False) -> str:
        value = self._provider.get(self._secret_id, max_age=self._max_age, force_fetch=fresh)
        if not isinstance(value, str) or not value:
            # Fail closed, and loudly: a misconfigured secret must not let anyone in.
            raise AuthorizerSettingsError("the API token secret holds no text")
        return value

    def is_authorized(self, authorization: str | None) -> bool:
        offered = bearer_token(authorization)
        if offered is None:
            return False
        if hmac.compare_digest(offered.encode(), self._token().encode()):
            return True
        if not self._may_refresh():
            return False
        return hmac.compare_digest(offered.encode(), self._token(fresh=True).encode())

    def _may_refresh(self) -> bool:
        now = self._clock()
        if self._refreshed_at is not None and now - self._refreshed_at < (
            REFRESH_AFTER_REFUSAL_SECONDS
        ):
            return False
        self._refreshed_at = now
        return True
