"""HTTP statuses of errors, and request validation's problems told in the user's words.

pydantic says `Input should be greater than or equal to 1` of `retention.daily`;
people are told `retention.daily: the number of daily backups to keep must be at
least 1`. The API words each problem once: the CLI and the dashboard show its
message as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pgbackups.domain.errors import (
    BackupNotStarted,
    Conflict,
    InvalidInput,
    NotFound,
    PgBackupsError,
)
from pgbackups.domain.names import DATABASE_NAME, DATABASE_NAME_RULE


class MalformedBody(PgBackupsError):
    """The body is not JSON at all (as opposed to JSON that breaks a rule: 422)."""

    code = "malformed_body"


# The first kind an error is an instance of decides (most specific first).
_STATUSES: tuple[tuple[type[PgBackupsError], int], ...] = (
    (MalformedBody, 400),
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    # Nothing conflicts: try again later (the record is already `error`, unlocked).
    (BackupNotStarted, 503),
)


def http_status(error: PgBackupsError) -> int:
    return next((status for kind, status in _STATUSES if isinstance(error, kind)), 400)


# -- validation messages ----------------------------------------------------------------

# What each field is, as a person would say it (by the field's last name, or its path).
_FIELD_WORDS = {
    "name": "the database name",
    "url": "the connection URL",
    "replica_url": "the replica's connection URL",
    "replication_url": "the replication connection URL",
    "compression": "the compression",
    "runner": "the runner",
    "schedule": "the schedule",
    "enabled": "`enabled`",
    "hour": "the hour",
    "timezone": "the time zone",
    "retention": "the retention policy",
    "retention.daily": "the number of daily backups to keep",
    "retention.weekly": "the number of weekly backups to keep",
    "retention.monthly": "the number of monthly backups to keep",
    "retention.manual": "the number of manual backups to keep",
    "base_backup_every_days": "the number of days between base backups",
    "window_days": "the recovery window in days",
    "limit": "the page size",
    "cursor": "the cursor",
    "status": "the status",
    "method": "the method",
    "expires_in": "the link's lifetime in seconds",
    "target_time": "the target time",
    "body": "the request body",
}


def field_path(loc: Sequence[Any]) -> str:
    """`retention.daily` from pydantic's ("body", "retention", "daily")."""
    parts = [str(part) for part in loc[1:]] if len(loc) > 1 else [str(part) for part in loc]
    return ".".join(parts)


def _words(field: str) -> str:
    last = field.rsplit(".", 1)[-1]
    return _FIELD_WORDS.get(field) or _FIELD_WORDS.get(last) or f"`{field}`"


def _rule(problem: Mapping[str, Any], in_json: bool) -> str:
    """What the value must be, said after the field's words."""
    kind = problem["type"]
    ctx = problem.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()))
        return {
            "greater_than_equal": f"must be at least {bound}",
            "greater_than": f"must be more than {bound}",
            "less_than_equal": f"must be at most {bound}",
            "less_than": f"must be less than {bound}",
        }[kind]
    if kind.startswith("int_"):
        written = ' written as a JSON integer (7, not "7", 7.0 or true)' if in_json else ""
        return f"must be a whole number{written}"
    if kind.startswith("bool_"):
        return "must be true or false" + (" (a JSON boolean)" if in_json else "")
    if kind == "string_type":
        return "must be a string" + (" (in double quotes)" if in_json else "")
    if kind == "string_too_short":
        length = ctx.get("min_length", 1)
        return "must not be empty" if length == 1 else f"must be at least {length} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == DATABASE_NAME.pattern:
            return f"must be {DATABASE_NAME_RULE}"
        return "is not in the expected form"
    if kind in ("literal_error", "enum"):
        return f"must be {ctx.get('expected')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object"
    if kind == "list_type":
        return "must be a list"
    if kind.startswith(("datetime_", "date_")):
        return "must be a date and time such as 2026-11-29T08:15:00Z"
    return "is not valid"


def validation_message(problem: Mapping[str, Any]) -> str:
    """One problem of pydantic's, as a sentence about the field: `field: what is wrong`."""
    field = field_path(problem["loc"])
    if problem["type"] == "extra_forbidden":
        return f"{field}: this request has no field of that name"
    if problem["type"] == "value_error" and "error" in (problem.get("ctx") or {}):
        # Our own validators' messages (time zones, compression) are written for people.
        return f"{field}: {problem['ctx']['error']}"
    in_json = problem["loc"][:1] == ("body",)
    return f"{field}: {_words(field)} {_rule(problem, in_json)}"
