"""Removing a database leaves no stored URL behind: not when the deletion fails, not
when a DELETE races a registration or a change; and never deletes a newer registration's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pgbackups.domain.errors import DatabaseExists, DatabaseNotFound
from pgbackups.services import Services
from pgbackups.usecases.databases import (
    DatabaseChanges,
    NewDatabase,
    change_database,
    register_database,
    remove_database,
)
from pgbackups.usecases.dispatch import dispatch
from tests.conftest import AwsStack

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def stored_url(aws: AwsStack, name: str) -> str | None:
    try:
        value = aws.secretsmanager.get_secret_value(
            SecretId=f"{aws.settings.secret_prefix}/databases/{name}"
        )
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return None
    return str(value["SecretString"])


@pytest.fixture
def clocked(services: Services) -> Services:
    services.clock = lambda: NOW
    return services


class FailingOnce:
    """Secrets whose next delete fails, as Secrets Manager may."""

    def __init__(self, secrets: Any) -> None:
        self._secrets = secrets
        self.fail_next_delete = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._secrets, name)

    def delete(self, database: str) -> None:
        if self.fail_next_delete:
            self.fail_next_delete = False
            raise ConnectionError("Secrets Manager unreachable")
        self._secrets.delete(database)


def test_a_retried_delete_finishes_the_url_deletion(
    aws: AwsStack, clocked: Services, database_url: str
) -> None:
    register_database(clocked, NewDatabase(name="shop", url=database_url))
    clocked.secrets = FailingOnce(clocked.secrets)  # type: ignore[assignment]

    with pytest.raises(ConnectionError):
        remove_database(clocked, "shop")
    assert stored_url(aws, "shop") is not None  # the record says removed; the URL is left

    with pytest.raises(DatabaseNotFound):  # already removed: 404, as before
        remove_database(clocked, "shop")
    assert stored_url(aws, "shop") is None


def test_the_hourly_sweep_finishes_a_failed_url_deletion(
    aws: AwsStack, clocked: Services, database_url: str
) -> None:
    register_database(clocked, NewDatabase(name="shop", url=database_url))
    clocked.secrets = FailingOnce(clocked.secrets)  # type: ignore[assignment]
    with pytest.raises(ConnectionError):
        remove_database(clocked, "shop")

    dispatch(clocked, NOW + timedelta(hours=1))

    assert stored_url(aws, "shop") is None
    with pytest.raises(DatabaseNotFound):  # no backup left: the removed record is forgotten
        clocked.catalog.get_database("shop", include_removed=True)


def test_a_delete_racing_a_registration_leaves_no_url(
    aws: AwsStack, clocked: Services, database_url: str
) -> None:
    secrets = clocked.secrets

    class RemovedBeforeTheWrite:
        def __getattr__(self, name: str) -> Any:
            return getattr(secrets, name)

        def put(self, database: str, info: Any) -> None:
            remove_database(clocked, database)  # another request, between create and write
            secrets.put(database, info)

    clocked.secrets = RemovedBeforeTheWrite()  # type: ignore[assignment]
    register_database(clocked, NewDatabase(name="shop", url=database_url))

    assert stored_url(aws, "shop") is None


def test_a_delete_racing_a_change_of_url_leaves_no_url(
    aws: AwsStack, clocked: Services, database_url: str
) -> None:
    register_database(clocked, NewDatabase(name="shop", url=database_url))
    secrets = clocked.secrets

    class RemovedWhileChanging:
        def __getattr__(self, name: str) -> Any:
            return getattr(secrets, name)

        def change(self, database: str, change: Any) -> Any:
            def removed_meanwhile(stored: Any) -> Any:
                remove_database(clocked, database)  # another request, after the change read
                return change(stored)

            return secrets.change(database, removed_meanwhile)

    clocked.secrets = RemovedWhileChanging()  # type: ignore[assignment]
    with pytest.raises(DatabaseNotFound):
        change_database(clocked, "shop", DatabaseChanges(url=database_url))

    assert stored_url(aws, "shop") is None


def test_a_new_registration_of_the_name_keeps_its_url(
    aws: AwsStack, clocked: Services, database_url: str
) -> None:
    register_database(clocked, NewDatabase(name="shop", url=database_url))
    remove_database(clocked, "shop")
    clocked.clock = lambda: NOW + timedelta(minutes=1)
    register_database(clocked, NewDatabase(name="shop", url=database_url))

    dispatch(clocked, NOW + timedelta(hours=1))

    assert stored_url(aws, "shop") is not None


def test_no_registration_while_a_removal_deletes_the_former_url(
    aws: AwsStack, clocked: Services, database_url: str
) -> None:
    register_database(clocked, NewDatabase(name="shop", url=database_url))
    clocked.secrets = FailingOnce(clocked.secrets)  # type: ignore[assignment]
    with pytest.raises(ConnectionError):
        remove_database(clocked, "shop")

    with pytest.raises(DatabaseExists, match="being removed"):
        register_database(clocked, NewDatabase(name="shop", url=database_url))
    # A claim left by a run that stopped is not held forever.
    clocked.clock = lambda: NOW + timedelta(minutes=16)
    register_database(clocked, NewDatabase(name="shop", url=database_url))
    assert stored_url(aws, "shop") is not None
