"""API tokens: create (the secret shown once), list, revoke, and tell who a bearer is.

The deploy-time token (Secrets Manager) is the `admin` named `deploy`; the
others live in the table as a salted hash (`pgbackups.domain.access`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from pgbackups.domain.access import (
    DEPLOY_TOKEN_NAME,
    DEPLOY_TOKEN_ROLE,
    IssuedToken,
    Role,
    TokenRecord,
    digest_matches,
    issue_token,
    token_id_of,
)
from pgbackups.domain.audit import AuditEvent
from pgbackups.domain.errors import InvalidInput
from pgbackups.domain.models import to_rfc3339
from pgbackups.ports import AuditLog, TokenStore
from pgbackups.services import Services
from pgbackups.usecases.audit import record

logger = Logger(child=True)

MAX_EXPIRY_DAYS = 3650


def create_token(
    services: Services, name: str, role: Role, expires_in_days: int | None = None
) -> IssuedToken:
    now = services.clock()
    expires_at = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise InvalidInput(
                f"expires_in_days: from 1 to {MAX_EXPIRY_DAYS}", field="expires_in_days"
            )
        expires_at = now + timedelta(days=expires_in_days)
    issued = issue_token(name, role, now, expires_at)
    services.tokens.create(issued)
    return issued


def list_tokens(services: Services) -> list[TokenRecord]:
    return services.tokens.list()


def stored_token(services: Services, name: str) -> TokenRecord | None:
    """The stored token called `name`; None for the deploy-time token, which has no record
    (its name is refused for the others), or for one revoked since the authorizer's answer."""
    return next((token for token in services.tokens.list() if token.name == name), None)


def revoke_token(services: Services, name: str) -> TokenRecord:
    return services.tokens.revoke(name)


@dataclass(frozen=True)
class Bearer:
    """Who a request comes from: a token's name and role."""

    name: str
    role: Role


@dataclass(frozen=True)
class Request:
    """What the audit trail keeps of a request, besides who sent it and the answer."""

    source_ip: str
    method: str
    route: str
    target: str
    database: str = ""


class Authenticator:
    """Tells who offers a bearer token: the deploy-time one, or a stored one that is
    neither revoked nor expired; records every refusal in the audit trail."""

    def __init__(
        self,
        is_deploy_token: Callable[[str], bool],
        store: TokenStore,
        audit: AuditLog,
        clock: Callable[[], datetime],
    ) -> None:
        self._is_deploy_token = is_deploy_token
        self._store = store
        self._audit = audit
        self._clock = clock

    def authorize(self, offered: str | None, request: Request) -> Bearer | None:
        """The bearer of the token `offered`, or None (recorded as refused)."""
        bearer, claimed = self._bearer(offered)
        if bearer is None:
            refusal = AuditEvent(
                at=to_rfc3339(self._clock()),
                token=claimed,
                role="",
                source_ip=request.source_ip,
                method=request.method,
                route=request.route,
                target=request.target,
                database=request.database,
                status=403,
            )
            try:
                record(self._audit, refusal)
            except Exception:
                # Refused all the same: a trail too busy to write must not let anyone in.
                logger.exception("the audit trail could not record a refusal")
        return bearer

    def _bearer(self, offered: str | None) -> tuple[Bearer | None, str]:
        """The bearer, or None and the name the refused token claims ("-" if none)."""
        if not offered:
            return None, "-"
        if self._is_deploy_token(offered):
            return Bearer(DEPLOY_TOKEN_NAME, DEPLOY_TOKEN_ROLE), DEPLOY_TOKEN_NAME
        token_id = token_id_of(offered)
        stored = self._store.get(token_id) if token_id else None
        if stored is None:
            return None, "-"
        token, salt, digest = stored
        now = self._clock()
        if not digest_matches(offered, salt, digest):
            return None, "-"  # not that token's secret: claim nothing on its behalf
        if token.expired(now):
            return None, token.name
        self._store.touch(token.token_id, now)
        return Bearer(token.name, token.role), token.name
