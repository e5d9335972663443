"""What every router shares: path parameters and the documented answers of a route."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import content_types
from aws_lambda_powertools.event_handler.openapi.params import Path

from pgbackups.api.schemas import BACKUP_REF, ErrorResponse, GatewayMessage
from pgbackups.domain.models import BACKUP_ID, DATABASE_NAME

DatabaseParam = Annotated[
    str, Path(pattern=DATABASE_NAME.pattern, description="Database name", examples=["shop"])
]
BackupIdParam = Annotated[str, Path(pattern=BACKUP_ID.pattern, description="Backup id (ULID)")]
BackupRefParam = Annotated[
    str, Path(pattern=BACKUP_REF, description="Backup id (ULID), or `latest`: the newest done one")
]

_ERROR_DESCRIPTIONS = {
    400: "The body is not JSON",
    404: "No such database or backup (or, from API Gateway, no such route)",
    409: "Conflicts with the current state (exists, in progress, not done)",
    422: "Invalid input: the message names the field",
    503: "The backup could not be started; it is recorded as failed",
}


def answers(success: int, description: str, *errors: int) -> dict[int, Any]:
    """The route's documented answers: its success, its errors, and the gateway's."""
    documented: dict[int, Any] = {success: {"description": description}}
    if success == 204:
        documented[success]["content"] = {}
    for status in (404, 422, *errors):
        documented[status] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorResponse}},
        }
    # API Gateway answers a path that matches no route itself, e.g. an empty name.
    documented[404]["content"][content_types.APPLICATION_JSON]["model"] = (
        ErrorResponse | GatewayMessage
    )
    documented[401] = {
        "description": "No bearer token (answered by API Gateway)",
        "content": {content_types.APPLICATION_JSON: {"model": GatewayMessage}},
    }
    documented[403] = {
        "description": (
            "The token's role does not allow this (`forbidden`, naming `required_role`), "
            "or the token was refused (answered by API Gateway)"
        ),
        "content": {content_types.APPLICATION_JSON: {"model": ErrorResponse | GatewayMessage}},
    }
    return documented
