"""Who may do what: the roles of API tokens, and the role each route needs.

The API consults `required_role` once per request (a middleware in
`pgbackups.api.app`), so this table is the one place a route's rule lives; a
test walks every route of the API against it, so a route without a rule fails.
Routes are keyed as API Gateway and the OpenAPI document name them:
`("PUT", "/v1/databases/{db}/pitr")`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from ulid import ULID

from pgbackups.domain.errors import Conflict, InvalidInput, NotFound, PgBackupsError
from pgbackups.domain.models import RetentionPolicy
from pgbackups.domain.names import BACKUP_ID


class Role(StrEnum):
    """Each role may do everything the ones before it may."""

    READ = "read"
    OPERATE = "operate"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return _RANKS[self] >= _RANKS[needed]


_RANKS = {Role.READ: 0, Role.OPERATE: 1, Role.ADMIN: 2}

# The deploy-time token (the secret in Secrets Manager): it must be able to
# create the others.
DEPLOY_TOKEN_NAME = "deploy"  # noqa: S105 (a name, not a secret)
DEPLOY_TOKEN_ROLE = Role.ADMIN


Body = Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    """A route's role; `admin_when` lists what, in the JSON body, asks for `admin`
    instead (a request that destroys, on a route that otherwise does not), and why."""

    role: Role | None  # None: a public route, no token needed
    admin_when: tuple[tuple[Callable[[Body], bool], str], ...] = ()
    # A read that hands out access to data (a download URL, a restore plan's
    # links): recorded in the audit trail like a change.
    issues_access: bool = False

    def needs(self, body: Any) -> tuple[Role | None, str]:
        """The role this body needs, and why when it is more than the route's."""
        if isinstance(body, Mapping):
            for applies, why in self.admin_when:
                if applies(body):
                    return Role.ADMIN, why
        return self.role, ""


def _disables(body: Body) -> bool:
    return body.get("enabled") is False


def _changes_connection(body: Body) -> bool:
    return "url" in body or "replica_url" in body


def _restores_in_place(body: Body) -> bool:
    """A restore into the database itself must say so (`confirm`): only admins may."""
    return body.get("confirm") is not None


def _keeps_fewer_than_the_defaults(body: Body) -> bool:
    """Retention below the Starter plan's counts: the next pruning deletes backups."""
    retention = body.get("retention")
    if not isinstance(retention, Mapping):
        return False
    defaults = RetentionPolicy()
    return any(
        isinstance(count, int) and count < getattr(defaults, kept)
        for kept, count in retention.items()
        if kept in RetentionPolicy.model_fields
    )


PUBLIC = Rule(None)
READ = Rule(Role.READ)
OPERATE = Rule(Role.OPERATE)
ADMIN = Rule(Role.ADMIN)

ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/static/{file}"): PUBLIC,
    ("GET", "/v1/openapi.json"): PUBLIC,
    ("GET", "/v1/databases"): READ,
    # Registering a database hands the stack a connection secret.
    ("POST", "/v1/databases"): ADMIN,
    ("GET", "/v1/databases/{db}"): READ,
    # Schedule, retention, compression, runner; new connection URLs need admin.
    ("PATCH", "/v1/databases/{db}"): Rule(
        Role.OPERATE,
        admin_when=(
            (_changes_connection, "changing a connection URL"),
            (_keeps_fewer_than_the_defaults, "keeping fewer backups than the default retention"),
        ),
    ),
    ("DELETE", "/v1/databases/{db}"): ADMIN,
    ("GET", "/v1/databases/{db}/backups"): READ,
    ("POST", "/v1/databases/{db}/backups"): OPERATE,
    ("GET", "/v1/databases/{db}/backups/{id}"): READ,
    ("DELETE", "/v1/databases/{db}/backups/{id}"): ADMIN,
    ("GET", "/v1/databases/{db}/backups/{id}/archive"): Rule(Role.READ, issues_access=True),
    # A hold only keeps a backup longer; releasing one lets retention delete it.
    ("PUT", "/v1/databases/{db}/backups/{id}/hold"): OPERATE,
    ("DELETE", "/v1/databases/{db}/backups/{id}/hold"): ADMIN,
    # Restores into another database; into the database itself (confirmed) need admin.
    ("POST", "/v1/databases/{db}/restores"): Rule(
        Role.OPERATE, admin_when=((_restores_in_place, "restoring into the database itself"),)
    ),
    ("GET", "/v1/databases/{db}/restores"): READ,
    ("GET", "/v1/databases/{db}/restores/{id}"): READ,
    # Restore drills touch nothing but a throwaway server of their own.
    ("POST", "/v1/databases/{db}/verifications"): OPERATE,
    ("GET", "/v1/databases/{db}/verifications"): READ,
    ("GET", "/v1/databases/{db}/verifications/{id}"): READ,
    # The drill's report: evidence about the data (table names, row counts), a download.
    ("GET", "/v1/databases/{db}/verifications/{id}/report"): Rule(Role.READ, issues_access=True),
    ("GET", "/v1/databases/{db}/schedule"): READ,
    ("PUT", "/v1/databases/{db}/schedule"): OPERATE,
    ("GET", "/v1/databases/{db}/pitr"): READ,
    ("PUT", "/v1/databases/{db}/pitr"): Rule(
        Role.OPERATE, admin_when=((_disables, "disabling continuous backups"),)
    ),
    # The download links of a local restore to a point in time: a download.
    ("GET", "/v1/databases/{db}/pitr/restore"): Rule(Role.READ, issues_access=True),
    # The signed-in token's own name, role and expiry: what the dashboard offers follows it.
    ("GET", "/v1/token"): READ,
    ("GET", "/v1/tokens"): ADMIN,
    ("POST", "/v1/tokens"): ADMIN,
    ("DELETE", "/v1/tokens/{name}"): ADMIN,
    ("GET", "/v1/audit"): ADMIN,
}


class NoRule(LookupError):
    """A route the table does not know: refused, never allowed by default."""


class Forbidden(PgBackupsError):
    """The token's role does not allow the request; `required_role` names the one it needs."""

    code = "forbidden"

    def __init__(self, needed: Role, have: Role | None, doing: str = "") -> None:
        what = f" ({doing})" if doing else ""
        super().__init__(
            f"this needs the {needed.value} role{what}; the token has "
            + (f"the {have.value} role" if have else "no role"),
            required_role=needed.value,
        )


def rule_for(method: str, route: str) -> Rule:
    try:
        return ROUTES[(method.upper(), route)]
    except KeyError:
        raise NoRule(f"no access rule for {method.upper()} {route}") from None


def required_role(method: str, route: str, body: Any = None) -> Role | None:
    """The role `method route` needs with this JSON body; None for a public route."""
    return rule_for(method, route).needs(body)[0]


def is_audited(method: str, route: str, status: int) -> bool:
    """Changes, access handed out, and refusals go to the audit trail; plain reads do not,
    nor requests refused for their input or state (4xx: nothing changed, nothing issued).
    A 5xx may have changed something before it failed: kept."""
    if status == 403:
        return True
    if 400 <= status < 500:
        return False
    return method.upper() != "GET" or rule_for(method, route).issues_access


def check_access(role: Role | None, method: str, route: str, body: Any = None) -> None:
    """Raises Forbidden unless `role` may call `method route` with this body."""
    needed, why = rule_for(method, route).needs(body)
    if needed is None or (role is not None and role.allows(needed)):
        return
    raise Forbidden(needed, role, why)


# -- API tokens -----------------------------------------------------------------------

TOKEN_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_TOKEN_PREFIX = "pgb"  # noqa: S105 (how our tokens start)
_SECRET_BYTES = 32
_SALT_BYTES = 16


class TokenRecord(BaseModel):
    """An API token as kept: never its secret, only a salted hash of it."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Role
    token_id: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `secret` is the whole bearer token, shown once and never kept."""

    record: TokenRecord
    secret: str
    salt: str
    digest: str


class TokenNotFound(NotFound):
    code = "token_not_found"


class TokenExists(Conflict):
    code = "token_exists"


def check_token_name(name: str) -> str:
    if not TOKEN_NAME.match(name):
        raise InvalidInput(
            "name: 1 to 63 of a-z, 0-9, '_', '.', '-', starting with a letter or digit",
            field="name",
        )
    if name == DEPLOY_TOKEN_NAME:
        raise InvalidInput(f"name: {DEPLOY_TOKEN_NAME!r} is the deploy-time token's", field="name")
    return name


def token_digest(secret: str, salt: str) -> str:
    """HMAC-SHA256 of the secret under a per-token salt.

    A fast hash is enough: the secret is 32 random bytes (256 bits), so no
    dictionary or brute force applies, and the authorizer checks it on every
    uncached request, where scrypt's deliberate cost would be latency for nothing.
    """
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def issue_token(name: str, role: Role, now: datetime, expires_at: datetime | None) -> IssuedToken:
    token_id = str(ULID.from_datetime(now))
    secret = f"{_TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    salt = secrets.token_hex(_SALT_BYTES)
    record = TokenRecord(
        name=check_token_name(name),
        role=role,
        token_id=token_id,
        created_at=now,
        expires_at=expires_at,
    )
    return IssuedToken(record, secret, salt, token_digest(secret, salt))


def token_id_of(secret: str) -> str | None:
    """The id a bearer token carries (to fetch its one item), or None if it is not ours."""
    prefix, _, rest = secret.partition("_")
    token_id, _, random_part = rest.partition("_")
    if prefix != _TOKEN_PREFIX or not BACKUP_ID.match(token_id) or not random_part:
        return None
    return token_id


def digest_matches(secret: str, salt: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(secret, salt), digest)
