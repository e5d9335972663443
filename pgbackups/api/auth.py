"""The bearer token check of the HTTP API's Lambda authorizer.

The token is generated at deploy time into Secrets Manager; it is read through
powertools parameters (cached for `max_age` seconds, so a rotation takes effect
within minutes) and compared in constant time. Neither the header nor the
token is ever logged.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

from aws_lambda_powertools.utilities.parameters import SecretsProvider

TOKEN_CACHE_SECONDS = 300
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
    ) -> None:
        self._secret_id = secret_id
        self._provider = provider
        self._max_age = max_age

    @staticmethod
    def secret_id_from_env(environ: Mapping[str, str] | None = None) -> str:
        env = os.environ if environ is None else environ
        secret_id = env.get("TOKEN_SECRET_ID")
        if not secret_id:
            raise AuthorizerSettingsError("missing environment variable: TOKEN_SECRET_ID")
        return secret_id

    def _token(self) -> str:
        value = self._provider.get(self._secret_id, max_age=self._max_age)
        if not isinstance(value, str) or not value:
            # Fail closed, and loudly: a misconfigured secret must not let anyone in.
            raise AuthorizerSettingsError("the API token secret holds no text")
        return value

    def is_authorized(self, authorization: str | None) -> bool:
        offered = bearer_token(authorization)
        if offered is None:
            return False
        return hmac.compare_digest(offered.encode(), self._token().encode())
