"""What a local stack leaves behind: nothing after a clean stop, and after a kill, what
the next start cleans up (the demo server, task folders) or reports (replication slots
on servers the stack does not own)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from pgbackups_cli.stack_file import process_alive
from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import start_stack
from tests.e2e.test_local_stack import new_database, register

pytestmark = pytest.mark.e2e


def folder(path: Path) -> Path:
    path.mkdir()
    return path


def test_the_next_start_cleans_what_a_killed_stack_left(tmp_path: Path) -> None:
    first = start_stack(folder(tmp_path / "first"), "--demo", "--demo-size-mb", "1")
    state_dir = first.state_dir
    demo_pid = int(first.info["demo_postgres_pid"])
    first.stop(signal.SIGKILL)
    # The postmaster does not die with the stack, nor does a task's folder go away.
    assert process_alive(demo_pid)
    (state_dir / "tasks" / "task-0123abcd-left").mkdir(parents=True)

    # The same folder, so the same state dir (its log starts afresh); the stale
    # stack.json would read as ready at once.
    first.stack_file.unlink()
    second = start_stack(state_dir.parent)
    try:
        deadline = time.monotonic() + 20
        while process_alive(demo_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not process_alive(demo_pid), "the killed stack's demo PostgreSQL still runs"
        assert not (state_dir / "tasks" / "task-0123abcd-left").exists()
        assert "demo PostgreSQL" in second.log()
    finally:
        assert second.stop() == 0, second.log()[-3000:]


def slots_on(postgres: EmbeddedPostgres) -> list[str]:
    output = postgres.psql("SELECT slot_name FROM pg_replication_slots ORDER BY 1")
    return [line.strip() for line in output.splitlines() if line.strip()]


def test_a_clean_stop_drops_the_slots_it_created_and_a_kill_is_reported(
    tmp_path: Path, postgres: EmbeddedPostgres
) -> None:
    before = set(slots_on(postgres))
    stack = start_stack(folder(tmp_path / "clean"))
    name, url = new_database(postgres, rows=10)
    register(stack, name, url)
    enabled = stack.api().put(f"{stack.api_url}/v1/databases/{name}/pitr", json={"enabled": True})
    assert enabled.status_code == 200, enabled.text
    assert set(slots_on(postgres)) - before, "enabling continuous backups made no slot"
    assert stack.stop() == 0, stack.log()[-3000:]
    assert set(slots_on(postgres)) == before, "a clean stop left a replication slot"

    killed = start_stack(folder(tmp_path / "killed"))
    name, url = new_database(postgres, rows=10)
    register(killed, name, url)
    enabled = killed.api().put(f"{killed.api_url}/v1/databases/{name}/pitr", json={"enabled": True})
    assert enabled.status_code == 200, enabled.text
    (left,) = set(slots_on(postgres)) - before
    killed.stop(signal.SIGKILL)

    killed.stack_file.unlink()
    again = start_stack(killed.state_dir.parent)
    try:
        log = again.log()
        assert left in log and f"pg_drop_replication_slot('{left}')" in log, log[-3000:]
        assert f"127.0.0.1:{postgres.port}" in log
        assert postgres.password not in log
    finally:
        assert again.stop() == 0
        postgres.psql(f"SELECT pg_drop_replication_slot('{left}')")
