"""HTTP statuses of errors: the domain's kinds, and the errors only the API raises."""

from __future__ import annotations

from pgbackups.domain.access import Forbidden
from pgbackups.domain.errors import (
    BackupNotStarted,
    Conflict,
    InvalidInput,
    NotFound,
    PgBackupsError,
)


class MalformedBody(PgBackupsError):
    """The body is not JSON at all (as opposed to JSON that breaks a rule: 422)."""

    code = "malformed_body"


# The first kind an error is an instance of decides (most specific first).
_STATUSES: tuple[tuple[type[PgBackupsError], int], ...] = (
    (MalformedBody, 400),
    (Forbidden, 403),
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    # Nothing conflicts: try again later (the record is already `error`, unlocked).
    (BackupNotStarted, 503),
)


def http_status(error: PgBackupsError) -> int:
    return next((status for kind, status in _STATUSES if isinstance(error, kind)), 400)
