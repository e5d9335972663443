"""Concurrent changes of one database through two API instances (two Lambda containers)
on the same moto resources: each change lands, none reverts another.

Each round makes both requests read what they change before either writes it (a
barrier on their first read of the catalog and of the secret), the interleaving in
which a read-merge-write loses one of them.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pgbackups.domain.models import ConnectionInfo
from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, LambdaContext, RecordingRunner, load_function
from tests.integration.test_api import NOW, Answer, Api

pytestmark = pytest.mark.integration

ROUNDS = 3


class FirstReads:
    """Holds each thread's first GetItem and first GetSecretValue until the other
    thread has made its own: both requests then work from the same reads."""

    def __init__(self) -> None:
        self.barriers = {"GetItem": threading.Barrier(2), "GetSecretValue": threading.Barrier(2)}
        self.seen = threading.local()
        self.putting = threading.Lock()

    def _put_begins(self, **_: Any) -> None:
        self.putting.acquire()

    def _put_ends(self, **_: Any) -> None:
        self.putting.release()

    @contextlib.contextmanager
    def installed(self, apis: list[Api]) -> Iterator[None]:
        hooks = []
        for api in apis:
            catalog = api.services.catalog._db  # type: ignore[attr-defined]
            secrets = api.services.secrets._sm  # type: ignore[attr-defined]
            hooks += [
                (catalog.meta.events, "after-call.dynamodb.GetItem", self._wait("GetItem")),
                (
                    secrets.meta.events,
                    "after-call.secrets-manager.GetSecretValue",
                    self._wait("GetSecretValue"),
                ),
            ]
            # moto's server checks a version's token and adds the version in two steps,
            # where Secrets Manager takes one PutSecretValue at a time: so do they here.
            hooks += [
                (secrets.meta.events, f"{when}.secrets-manager.PutSecretValue", hook)
                for when, hook in (
                    ("before-call", self._put_begins),
                    ("after-call", self._put_ends),
                    ("after-call-error", self._put_ends),
                )
            ]
        for events, name, hook in hooks:
            events.register(name, hook)
        try:
            yield
        finally:
            for events, name, hook in hooks:
                events.unregister(name, hook)

    def _wait(self, operation: str) -> Any:
        def wait(**_: Any) -> None:
            done: set[str] = getattr(self.seen, "operations", set())
            if operation in done:
                return
            self.seen.operations = done | {operation}
            # Broken when the other request never reads this: nothing to line up.
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barriers[operation].wait(timeout=5)

        return wait


@pytest.fixture
def apis(aws: AwsStack, lambda_context: LambdaContext) -> Iterator[list[Api]]:
    """Two instances of the api function on this test's resources."""
    instances = []
    for _ in range(2):
        module = load_function("api")
        module.services.runner = RecordingRunner()
        module.services.clock = lambda: NOW
        instances.append(Api(module, module.services.runner, aws, lambda_context))
    yield instances


def at_once(apis: list[Api], *requests: tuple[str, str, Any]) -> list[Answer]:
    """The requests, one per API instance, on two threads, lined up on their first reads."""
    with FirstReads().installed(apis), ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(api.call, event, path, body=body)
            for api, (event, path, body) in zip(apis, requests, strict=True)
        ]
        return [future.result() for future in futures]


def stored_urls(aws: AwsStack, database: str) -> dict[str, Any]:
    value = aws.secretsmanager.get_secret_value(
        SecretId=f"{aws.settings.secret_prefix}/databases/{database}"
    )["SecretString"]
    data = json.loads(value)
    return {"url": data["url"], "replica_url": data["replica_url"]}


def test_two_patches_of_different_fields_both_land(
    apis: list[Api], database_name: str, database_url: str
) -> None:
    apis[0].register(database_name, database_url)
    path = f"/v1/databases/{database_name}"
    for round_ in range(ROUNDS):
        daily, weekly, hour = 10 + round_, 5 + round_, 2 + round_
        answers = at_once(
            apis,
            ("api-update-database", path, {"retention": {"daily": daily}, "compression": "lz4"}),
            (
                "api-update-database",
                path,
                {"retention": {"weekly": weekly}, "schedule": {"hour": hour}},
            ),
        )

        assert [a.status for a in answers] == [200, 200], [a.body for a in answers]
        shown = apis[0].call("api-get-database", path).body
        assert (shown["retention"]["daily"], shown["retention"]["weekly"]) == (daily, weekly)
        assert (shown["schedule"]["hour"], shown["compression"]) == (hour, "lz4")


def test_a_password_change_racing_a_replica_change_keeps_both(
    apis: list[Api], postgres: EmbeddedPostgres, database_name: str, database_url: str
) -> None:
    apis[0].register(database_name, database_url)
    path = f"/v1/databases/{database_name}"
    for round_ in range(ROUNDS):
        password = f"rotated-{round_}"
        role = f"app_{database_name}"
        postgres.psql(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        new_url = f"postgresql://{role}:{password}@{postgres.host}:{postgres.port}/{database_name}"
        replica_url = database_url

        answers = at_once(
            apis,
            ("api-update-database", path, {"url": new_url}),
            ("api-update-database", path, {"replica_url": replica_url}),
        )

        assert [a.status for a in answers] == [200, 200], [a.body for a in answers]
        assert stored_urls(apis[0].aws, database_name) == {
            "url": new_url,
            "replica_url": replica_url,
        }
        assert apis[0].call("api-get-database", path).body["has_replica"] is True
        # The next round changes the password from the original URL again.
        apis[0].call("api-update-database", path, body={"url": database_url, "replica_url": None})


def test_a_schedule_put_racing_a_retention_patch_keeps_both(
    apis: list[Api], database_name: str, database_url: str
) -> None:
    apis[0].register(database_name, database_url)
    path = f"/v1/databases/{database_name}"
    for round_ in range(ROUNDS):
        hour, enabled, daily = 3 + round_, round_ % 2 == 1, 20 + round_
        answers = at_once(
            apis,
            ("api-put-schedule", f"{path}/schedule", {"hour": hour}),
            (
                "api-update-database",
                path,
                {"retention": {"daily": daily}, "schedule": {"enabled": enabled}},
            ),
        )

        assert [a.status for a in answers] == [200, 200], [a.body for a in answers]
        shown = apis[0].call("api-get-database", path).body
        assert (shown["schedule"]["hour"], shown["schedule"]["enabled"]) == (hour, enabled)
        assert shown["retention"]["daily"] == daily


def test_a_url_change_that_loses_every_time_is_409_and_changes_nothing(
    apis: list[Api], database_name: str, database_url: str
) -> None:
    api, other = apis
    api.register(database_name, database_url)
    others = [f"{database_url}?application_name=other{n}" for n in range(10)]
    landed: list[str] = []

    def another_change_first(**_: Any) -> None:
        """The other instance changes the URL between this change's read and its write."""
        landed.append(others.pop(0))
        other.services.secrets.change(database_name, lambda _: ConnectionInfo(landed[-1]))

    events = api.services.secrets._sm.meta.events  # type: ignore[attr-defined]
    events.register("before-call.secrets-manager.PutSecretValue", another_change_first)
    answer = api.call(
        "api-update-database", f"/v1/databases/{database_name}", body={"replica_url": database_url}
    )
    events.unregister("before-call.secrets-manager.PutSecretValue", another_change_first)

    assert answer.status == 409
    assert answer.body["error"]["code"] == "conflict"
    assert "try again" in answer.body["error"]["message"]
    assert stored_urls(api.aws, database_name) == {"url": landed[-1], "replica_url": None}
    shown = api.call("api-get-database", f"/v1/databases/{database_name}").body
    assert shown["has_replica"] is False


def test_whether_there_is_a_replica_follows_the_newest_urls_whatever_the_order(
    apis: list[Api], database_name: str, database_url: str
) -> None:
    api = apis[0]
    api.register(database_name, database_url)

    api.services.catalog.record_replica(database_name, True, 3)
    api.services.catalog.record_replica(database_name, False, 2)  # an older change, late

    assert api.services.catalog.get_database(database_name).has_replica is True
