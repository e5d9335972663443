"""/v1/token: the token a request is signed in with, so a client (the dashboard) can
offer only what its role allows. The API checks every route's role all the same."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, Field

from pgbackups.api.access import bearer
from pgbackups.api.params import answers
from pgbackups.domain.access import Forbidden, Role
from pgbackups.services import Services
from pgbackups.usecases.tokens import stored_token

TAGS = ["tokens"]


class SignedInToken(BaseModel):
    name: str = Field(description="`deploy` for the deploy-time token")
    role: Role
    expires_at: datetime | None = Field(description="null: it does not expire")


def build_router(services: Services) -> Router:
    router = Router()

    @router.get(
        "/v1/token",
        operation_id="getSignedInToken",
        summary="The token this request carries: its name, role and expiry (never its secret)",
        tags=TAGS,
        responses=answers(200, "The signed-in token"),
    )
    def signed_in_token() -> SignedInToken:
        name, role = bearer(cast(APIGatewayProxyEventV2, router.current_event))
        if role is None:  # the role check refuses such a request before it gets here
            raise Forbidden(Role.READ, None)
        stored = stored_token(services, name)
        return SignedInToken(name=name, role=role, expires_at=stored.expires_at if stored else None)

    return router
