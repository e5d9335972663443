"""The bearer token check: parsing, constant-time comparison, failing closed."""

from __future__ import annotations

from typing import Any

import pytest

from pgbackups.api.auth import (
    REFRESH_AFTER_REFUSAL_SECONDS,
    AuthorizerSettingsError,
    TokenAuthorizer,
    bearer_token,
)

pytestmark = pytest.mark.unit


class FakeSecrets:
    """Stands in for powertools' SecretsProvider."""

    def __init__(self, value: Any) -> None:
        self.value = value  # what Secrets Manager holds
        self.cached: Any = None  # what powertools' cache holds (max_age is not modelled)
        self.reads: list[tuple[str, int | None]] = []
        self.fetches = 0  # reads that reached Secrets Manager

    def get(self, name: str, max_age: int | None = None, force_fetch: bool = False) -> Any:
        self.reads.append((name, max_age))
        if self.cached is None or force_fetch:
            self.cached = self.value
            self.fetches += 1
        return self.cached


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        (" Bearer abc", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_the_token_must_match_exactly() -> None:
    secrets = FakeSecrets("s3cret-token")
    authorizer = TokenAuthorizer("arn:secret", provider=secrets)  # type: ignore[arg-type]

    assert authorizer.is_authorized("Bearer s3cret-token")
    for header in ("Bearer s3cret-toke", "Bearer s3cret-token2", "Bearer S3CRET-TOKEN", None, ""):
        assert not authorizer.is_authorized(header)
    assert secrets.reads[0] == ("arn:secret", 300)


def test_no_header_does_not_even_read_the_secret() -> None:
    secrets = FakeSecrets("s3cret-token")
    authorizer = TokenAuthorizer("arn:secret", provider=secrets)  # type: ignore[arg-type]

    assert not authorizer.is_authorized(None)
    assert secrets.reads == []


@pytest.mark.parametrize("value", ["", b"binary", None])
def test_a_secret_without_a_text_token_lets_nobody_in(value: Any) -> None:
    authorizer = TokenAuthorizer("arn:secret", provider=FakeSecrets(value))  # type: ignore[arg-type]

    assert not authorizer.is_authorized("Bearer ")
    with pytest.raises(AuthorizerSettingsError):
        authorizer.is_authorized("Bearer x")


def test_the_secret_id_comes_from_the_environment() -> None:
    with pytest.raises(AuthorizerSettingsError, match="TOKEN_SECRET_ID"):
        TokenAuthorizer.secret_id_from_env({})


def test_a_rotated_token_is_accepted_at_once_by_a_warm_instance() -> None:
    secrets, clock = FakeSecrets("old-token"), Clock()
    authorizer = TokenAuthorizer("arn:secret", provider=secrets, clock=clock)  # type: ignore[arg-type]
    assert authorizer.is_authorized("Bearer old-token")

    secrets.value = "new-token"  # rotated; the instance still holds the old one
    clock.now += 1

    assert authorizer.is_authorized("Bearer new-token")
    assert not authorizer.is_authorized("Bearer old-token")


def test_refusals_re_read_the_secret_at_most_once_per_interval() -> None:
    secrets, clock = FakeSecrets("s3cret-token"), Clock()
    authorizer = TokenAuthorizer("arn:secret", provider=secrets, clock=clock)  # type: ignore[arg-type]
    assert authorizer.is_authorized("Bearer s3cret-token")
    assert secrets.fetches == 1

    for _ in range(50):  # a burst of wrong tokens
        assert not authorizer.is_authorized("Bearer guess")
    assert secrets.fetches == 2

    clock.now += REFRESH_AFTER_REFUSAL_SECONDS - 0.1
    assert not authorizer.is_authorized("Bearer guess")
    assert secrets.fetches == 2
    clock.now += 0.2
    assert not authorizer.is_authorized("Bearer guess")
    assert secrets.fetches == 3
