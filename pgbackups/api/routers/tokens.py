"""/v1/tokens: API tokens with a role; the secret is shown once, in the creation's answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, ConfigDict, Field

from pgbackups.api.params import answers
from pgbackups.domain.access import TOKEN_NAME, Role, TokenRecord
from pgbackups.services import Services
from pgbackups.usecases import tokens
from pgbackups.usecases.tokens import MAX_EXPIRY_DAYS

TAGS = ["tokens"]

TokenNameParam = Annotated[str, Path(pattern=TOKEN_NAME.pattern, description="Token name")]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=TOKEN_NAME.pattern, examples=["ci"])
    # A Literal, not the enum: strict validation takes JSON strings for it.
    role: Literal["read", "operate", "admin"] = Field(description="What the token may do")
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_DAYS)


class TokenView(BaseModel):
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    expired: bool


class NewToken(TokenView):
    token: str = Field(description="The bearer token: shown this once, never again")


class TokenList(BaseModel):
    tokens: list[TokenView]


def _view(record: TokenRecord, now: datetime) -> TokenView:
    return TokenView(
        name=record.name,
        role=record.role,
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
        expired=record.expired(now),
    )


def build_router(services: Services) -> Router:
    router = Router()

    @router.get(
        "/v1/tokens",
        operation_id="listTokens",
        summary="List API tokens (never their secrets)",
        tags=TAGS,
        responses=answers(200, "The tokens, by name"),
    )
    def list_tokens() -> TokenList:
        now = services.clock()
        return TokenList(tokens=[_view(record, now) for record in tokens.list_tokens(services)])

    @router.post(
        "/v1/tokens",
        operation_id="createToken",
        summary="Create an API token with a role; its secret is in this answer only",
        tags=TAGS,
        responses=answers(201, "The token, with its secret", 400, 409),
    )
    def create_token(request: TokenRequest) -> Response[NewToken]:
        issued = tokens.create_token(
            services, request.name, Role(request.role), request.expires_in_days
        )
        view = _view(issued.record, services.clock())
        return Response(
            status_code=201,
            content_type=content_types.APPLICATION_JSON,
            body=NewToken(**view.model_dump(), token=issued.secret),
        )

    @router.delete(
        "/v1/tokens/<name>",
        operation_id="revokeToken",
        summary="Revoke an API token (refused within a minute, the authorizer's cache)",
        tags=TAGS,
        responses=answers(204, "Revoked"),
    )
    def revoke_token(name: TokenNameParam) -> Response[None]:
        tokens.revoke_token(services, name)
        return Response(status_code=204)

    return router
