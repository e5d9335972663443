"""Errors only the HTTP API raises; the domain's own are in `pgbackups.domain.errors`."""

from __future__ import annotations

from pgbackups.domain.errors import PgBackupsError


class MalformedBody(PgBackupsError):
    """The body is not JSON at all (as opposed to JSON that breaks a rule: 422)."""

    code = "malformed_body"
    status = 400
