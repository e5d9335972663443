"""Continuous backups as a person runs them, over the API on real servers: settings PUT
again change nothing, a new replication URL to the same server keeps the chain, a break
stays `broken` until the new chain's base backup is stored and shows as a gap between
recoverable ranges, restores into a gap are refused naming both neighbours, disabled
means disabled, and each reason enabling can fail is told apart."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pgbackups.domain.models import to_rfc3339
from pgbackups.postgres import wal
from pgbackups.usecases import pitr
from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, LambdaContext, RecordingRunner, load_function
from tests.integration.api import Api
from tests.integration.test_pitr import commit_row, run_base_backups, slot_of, start_server

pytestmark = pytest.mark.integration

NAME = "shop"  # the database of the sample events (events/api-*-pitr*.json)


@pytest.fixture
def live(aws: AwsStack, lambda_context: LambdaContext) -> Api:
    """The API function on the wall clock (captures and base backups happen now, one after
    another), its base backups asked of a RecordingRunner."""
    module = load_function("api")
    runner = RecordingRunner()
    module.services.runner = runner
    module.services.clock = lambda: datetime.now(UTC)
    return Api(module, runner, aws, lambda_context)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedPostgres]:
    server = start_server("18")
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def source(server: EmbeddedPostgres, live: Api) -> Iterator[EmbeddedPostgres]:
    """The module's server with the database `shop` registered (and dropped after)."""
    url = server.create_database(NAME)
    server.psql("CREATE TABLE events (id int PRIMARY KEY, note text)", NAME)
    live.register(NAME, url)
    yield server
    server.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")
    server.psql(f'DROP DATABASE "{NAME}" WITH (FORCE)')
    for role in server.psql("SELECT rolname FROM pg_roles WHERE oid >= 16384").split():
        server.psql(f'DROP ROLE "{role}"')


def view(api: Api) -> dict[str, Any]:
    answer = api.call("api-get-pitr")
    assert answer.status == 200, answer.body
    result: dict[str, Any] = answer.body
    return result


def put(api: Api, **body: Any) -> Any:
    return api.call("api-put-pitr", body={"enabled": True} | body)


def plan(api: Api, target: str) -> Any:
    return api.call("api-get-pitr-restore", query={"target_time": target})


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def archived(api: Api, server: EmbeddedPostgres, row: int) -> None:
    """A commit, then a capture that stores it."""
    commit_row(server, NAME, row)
    assert pitr.capture(api.services, NAME, seconds_left=600).outcome == "captured"


def enabled_with_a_range(api: Api, server: EmbeddedPostgres) -> None:
    """Continuous backups on, their first base backup stored and a commit after it archived."""
    assert put(api).status == 200
    assert len(run_base_backups(api.services)) == 1
    archived(api, server, 1)


def pitr_events(aws: AwsStack) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e["detail-type"], e["detail"])
        for e in aws.received_events()
        if e["detail-type"].startswith("PITR")
    ]


def test_putting_the_settings_a_database_has_changes_nothing(
    live: Api, source: EmbeddedPostgres
) -> None:
    enabled_with_a_range(live, source)
    before = view(live)
    chain = live.services.pitr.get_state(NAME).chain_id  # type: ignore[union-attr]
    slot_lsn = source.psql("SELECT slot_name, restart_lsn FROM pg_replication_slots")

    again = put(live, base_backup_every_days=7, window_days=7)
    assert again.status == 200, again.body
    # The same replication URL as stored (the database's own) is no change either.
    same_url = put(live, replication_url=source.url(NAME))
    assert same_url.status == 200, same_url.body

    state = live.services.pitr.get_state(NAME)
    assert state is not None and state.chain_id == chain and state.status == "ok"
    assert source.psql("SELECT slot_name, restart_lsn FROM pg_replication_slots") == slot_lsn
    assert not live.runner.take_base_backup_requests()  # no new chain, no new base backup
    after = view(live)
    assert after["recoverable_ranges"] == before["recoverable_ranges"]
    assert len(after["recoverable_ranges"]) == 1 and after["breaks"] == []

    # Only a setting changed: that setting, and nothing else.
    longer = put(live, window_days=14)
    assert longer.status == 200 and longer.body["window_days"] == 14
    assert live.services.pitr.get_state(NAME).chain_id == chain  # type: ignore[union-attr]


def test_a_new_replication_url_to_the_same_server_keeps_the_chain_and_the_slot(
    live: Api, source: EmbeddedPostgres
) -> None:
    enabled_with_a_range(live, source)
    chain = live.services.pitr.get_state(NAME).chain_id  # type: ignore[union-attr]
    slot = slot_of(live.services, NAME)
    source.psql("CREATE ROLE mover LOGIN REPLICATION PASSWORD 'mover-pw'")
    source.psql(f'GRANT CONNECT ON DATABASE "{NAME}" TO mover')
    mover = f"postgresql://mover:mover-pw@127.0.0.1:{source.port}/{NAME}"

    answer = put(live, replication_url=mover)
    assert answer.status == 200, answer.body
    assert "mover-pw" not in json.dumps(answer.body)
    state = live.services.pitr.get_state(NAME)
    assert state is not None and state.chain_id == chain and state.slot == slot
    assert live.services.secrets.replication_url(NAME) == mover
    assert source.psql("SELECT slot_name FROM pg_replication_slots") == slot
    assert not live.runner.take_base_backup_requests()

    # The capture goes on with the new role: no gap, no break.
    archived(live, source, 2)
    assert source.psql("SELECT usename FROM pg_stat_replication") in ("", "mover")
    shown = view(live)
    assert len(shown["recoverable_ranges"]) == 1 and shown["breaks"] == []
    assert shown["status"] == "ok" and shown["last_archived_wal"] is not None


def test_a_new_replication_url_to_another_server_starts_a_new_chain_there(
    live: Api, source: EmbeddedPostgres, aws: AwsStack
) -> None:
    enabled_with_a_range(live, source)
    old_chain = live.services.pitr.get_state(NAME).chain_id  # type: ignore[union-attr]
    other = start_server("18")
    try:
        other.create_database(NAME)
        answer = put(live, replication_url=other.url(NAME))
        assert answer.status == 200, answer.body
        state = live.services.pitr.get_state(NAME)
        assert state is not None and state.chain_id != old_chain
        # The slot moved with it: the old server keeps no WAL for nobody.
        assert source.psql("SELECT count(*) FROM pg_replication_slots") == "0"
        assert other.psql("SELECT slot_name FROM pg_replication_slots") == state.slot
        (ended,) = view(live)["breaks"]
        assert ended["chain_id"] == old_chain and "another server" in ended["reason"]
    finally:
        other.destroy()


def test_a_dropped_slot_is_broken_until_the_new_base_backup_is_stored_and_leaves_a_gap(
    live: Api, source: EmbeddedPostgres, aws: AwsStack
) -> None:
    enabled_with_a_range(live, source)
    aws.received_events()  # only what the break says, below
    old_chain = live.services.pitr.get_state(NAME).chain_id  # type: ignore[union-attr]
    source.psql(f"SELECT pg_drop_replication_slot('{slot_of(live.services, NAME)}')")

    report = pitr.capture(live.services, NAME, seconds_left=600)
    assert report.outcome == "broken"
    broken = view(live)
    assert broken["status"] == "broken" and "no longer exists" in broken["broken_reason"]
    since = broken["broken_since"]
    assert since is not None
    (lasting,) = broken["breaks"]
    assert lasting["chain_id"] == old_chain and lasting["reason"] == broken["broken_reason"]
    assert lasting["recovered_at"] is None and lasting["gap_seconds"] is None
    assert moment(lasting["at"]) == moment(since)
    # A break recorded before its start was: the chain's end says when it began.
    state = live.services.pitr.get_state(NAME)
    assert state is not None
    live.services.pitr.put_state(state.model_copy(update={"broken_since": None}))
    assert view(live)["broken_since"] == since
    live.services.pitr.put_state(state)

    # It holds across captures while the new chain's base backup is on its way.
    for _ in range(2):
        pitr.capture(live.services, NAME, seconds_left=600)
        still = view(live)
        assert (still["status"], still["broken_since"]) == ("broken", since)

    (new_base,) = run_base_backups(live.services)
    recovered = view(live)
    assert recovered["status"] == "ok"
    assert recovered["broken_since"] is None and recovered["broken_reason"] is None
    (ended,) = recovered["breaks"]
    assert moment(ended["recovered_at"]) == new_base.finished_at
    assert ended["gap_seconds"] == pytest.approx(
        (new_base.finished_at - moment(ended["at"])).total_seconds()
    )
    events = pitr_events(aws)
    assert [kind for kind, _ in events] == ["PITR Broken", "PITR Recovered"]
    assert events[0][1]["chain_id"] == old_chain
    assert events[1][1]["broken_since"] == since
    assert events[1][1]["base_backup_id"] == new_base.id

    # Two ranges now, the gap between them not restorable.
    archived(live, source, 2)
    shown = view(live)
    first, second = shown["recoverable_ranges"]
    assert second["base_backup_id"] == new_base.id
    assert shown["earliest_recoverable_at"] == first["from"]
    assert shown["latest_recoverable_at"] == second["to"]
    gap_start, gap_end = moment(first["to"]), moment(second["from"])
    assert gap_start < gap_end
    inside = plan(live, to_rfc3339(gap_start + (gap_end - gap_start) / 2))
    assert inside.status == 422, inside.body
    error = inside.body["error"]
    assert error["code"] == "outside_recovery_window"
    assert (error["before"], error["after"]) == (to_rfc3339(gap_start), to_rfc3339(gap_end))
    assert error["before"] in error["message"] and error["after"] in error["message"]
    # The second before the gap and the second after it are restorable.
    for edge in (gap_start, gap_end):
        answer = plan(live, to_rfc3339(edge))
        assert answer.status == 200, answer.body
    assert plan(live, to_rfc3339(gap_end)).body["base_backup"]["id"] == new_base.id
    assert plan(live, to_rfc3339(gap_start)).body["base_backup"]["id"] == first["base_backup_id"]
    assert pitr_events(aws) == []  # nothing more to say


def test_disabled_means_disabled_unless_history_is_kept(
    live: Api, source: EmbeddedPostgres
) -> None:
    never = plan(live, "latest")
    assert never.status == 409 and never.body["error"]["code"] == "pitr_disabled"

    enabled_with_a_range(live, source)
    off = put(live, enabled=False)
    assert off.status == 200 and off.body["status"] == "disabled"
    shown = view(live)
    (kept,) = shown["recoverable_ranges"]
    assert moment(shown["history_kept_until"]) == moment(kept["to"]) + timedelta(days=7)
    # Until then, what is kept restores.
    assert plan(live, "latest").status == 200
    assert plan(live, kept["to"]).status == 200

    # The capture (still run for it) expires the history when its time comes.
    expired = moment(shown["history_kept_until"]) + timedelta(minutes=1)
    live.module.services.clock = lambda: expired
    assert pitr.pitr_databases(live.services) == [NAME]
    assert pitr.capture(live.services, NAME, seconds_left=600).outcome == "disabled"
    gone = view(live)
    assert gone["recoverable_ranges"] == [] and gone["history_kept_until"] is None
    refused = plan(live, "latest")
    assert refused.status == 409 and refused.body["error"]["code"] == "pitr_disabled"
    assert pitr.pitr_databases(live.services) == []
    assert not [k for k in live.aws.object_keys() if "/pitr/" in k]


# -- what enabling checks, each against a server that fails that way ------------------------


@pytest.fixture(scope="module")
def strict() -> Iterator[EmbeddedPostgres]:
    """A server with one WAL sender, one replication slot, and replication lines in
    pg_hba.conf for `postgres` and `app` only."""
    server = start_server("18", extra_conf="max_wal_senders = 1\nmax_replication_slots = 1\n")
    try:
        hba = server.data_dir / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        kept = [line for line in lines if " replication " not in f" {line} "]
        kept.append("host replication postgres,app 127.0.0.1/32 scram-sha-256")
        hba.write_text("\n".join(kept) + "\n")
        server.psql("SELECT pg_reload_conf()")
        server.create_database(NAME)
        yield server
    finally:
        server.destroy()


@pytest.fixture
def registered(live: Api, strict: EmbeddedPostgres) -> Api:
    live.register(NAME, strict.url(NAME))
    return live


def refusal(api: Api, url: str, code: str) -> str:
    """PUT enabling with `url`: 422 `code`, nothing changed, no secret said; the message."""
    answer = put(api, replication_url=url)
    assert answer.status == 422, answer.body
    error = answer.body["error"]
    assert error["code"] == code, error
    assert error["field"] == "replication_url"
    assert "pw-" not in json.dumps(answer.body) and "postgresql://" not in error["message"]
    assert api.services.pitr.get_state(NAME) is None
    assert view(api)["enabled"] is False
    message: str = error["message"]
    return message


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_enabling_tells_each_refusal_apart(registered: Api, strict: EmbeddedPostgres) -> None:
    api, port = registered, strict.port
    message = refusal(
        api, f"postgresql://postgres:pw-x@127.0.0.1:{closed_port()}/{NAME}", "server_unreachable"
    )
    assert "Connection refused" in message

    message = refusal(
        api, f"postgresql://postgres:pw-wrong@127.0.0.1:{port}/{NAME}", "authentication_failed"
    )
    assert "password authentication failed" in message

    strict.psql("CREATE ROLE app LOGIN PASSWORD 'pw-app'")
    message = refusal(
        api, f"postgresql://app:pw-app@127.0.0.1:{port}/{NAME}", "replication_not_permitted"
    )
    assert "ALTER ROLE" in message

    strict.psql("CREATE ROLE lonely LOGIN REPLICATION PASSWORD 'pw-lonely'")
    message = refusal(
        api,
        f"postgresql://lonely:pw-lonely@127.0.0.1:{port}/{NAME}",
        "replication_refused_by_pg_hba",
    )
    assert "host replication" in message

    # The one WAL sender is busy.
    busy = wal.connect_replication(strict.url(NAME))
    try:
        message = refusal(api, strict.url(NAME), "no_free_wal_sender")
        assert "max_wal_senders" in message
    finally:
        busy.close()

    # The one replication slot is taken by another tool.
    strict.psql("SELECT pg_create_physical_replication_slot('other_tool')")
    try:
        message = refusal(api, strict.url(NAME), "no_free_replication_slot")
        assert "max_replication_slots" in message
    finally:
        strict.psql("SELECT pg_drop_replication_slot('other_tool')")

    # Once the server allows it, enabling works.
    assert put(api, replication_url=strict.url(NAME)).status == 200
    assert put(api, enabled=False).status == 200


def test_server_15_words_its_refusals_differently_and_is_told_apart_the_same(
    live: Api,
) -> None:
    server = start_server("15", extra_conf="max_replication_slots = 0\n")
    try:
        live.register(NAME, server.create_database(NAME))
        server.psql("CREATE ROLE app LOGIN PASSWORD 'pw-app'")
        app = f"postgresql://app:pw-app@127.0.0.1:{server.port}/{NAME}"
        assert "ALTER ROLE" in refusal(live, app, "replication_not_permitted")
        message = refusal(live, server.url(NAME), "no_free_replication_slot")
        assert "max_replication_slots" in message
    finally:
        server.destroy()
