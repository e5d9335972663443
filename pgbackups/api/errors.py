"""Errors only the HTTP API raises; the domain's own are in `pgbackups.errors`."""

from __future__ import annotations

from pgbackups.errors import PgBackupsError


class MalformedBody(PgBackupsError):
    """The body is not JSON at all (as opposed to JSON that breaks a rule: 422)."""

    code = "malformed_body"
    status = 400


class BackupNotStarted(PgBackupsError):
    """The backup function could not be invoked: a temporary fault on our side.

    503 rather than 409: nothing conflicts with the request, and trying again
    later is the right reaction; the record is already finished as `error`, so
    the database is not left locked.
    """

    code = "backup_not_started"
    status = 503
