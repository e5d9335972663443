"""What the dashboard starts on the local stack's Fargate task, run for real in a headless
Chromium: a restore drill (Verify now) and a restore to a point in time, each followed
live by the page to its end; the report and the restored rows are then checked.

The task finds the server binaries as in test_pitr_restores_cli.py (its `local_stack`)."""

# The dashboard tests' fixtures are imported by name, which ruff sees as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import RunningStack
from tests.e2e.test_dashboard import (  # noqa: F401 (fixtures)
    BROWSER_ZONE,
    Console,
    api_get,
    browser,
    capture_now,
    console,
    new_database,
    page,
    pitr_of,
    playwright,
    register,
    sign_in,
    take_backup,
    until,
)
from tests.e2e.test_dashboard_access import new_token
from tests.e2e.test_pitr_restores_cli import local_stack  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e


def open_database(page: Page, stack: RunningStack, token: str, database: str) -> None:
    sign_in(page, stack, token)
    expect(page.locator("#databases-view")).to_be_visible()
    page.get_by_role("link", name=database, exact=True).click()
    expect(page.get_by_role("heading", name=database, exact=True)).to_be_visible()
    expect(page.locator("#database-facts")).to_contain_text("Compression")


def test_verify_now_runs_a_drill_the_page_follows_it_to_passed_with_its_checks_and_report(
    page: Page, console: Console, local_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    name = new_database(postgres, rows=75)
    register(local_stack, name, postgres.url(name))
    backup = take_backup(local_stack, name)
    operator = new_token(local_stack, f"driller-{uuid.uuid4().hex[:4]}", "operate")
    open_database(page, local_stack, operator, name)
    card = page.locator("#verification-card")
    expect(card.locator("#verification-last")).to_have_text("No drill yet")
    row = page.locator(f'#backups-table tr[data-backup-id="{backup["id"]}"]')
    expect(row.locator(".badge-verified")).to_have_count(0)

    card.get_by_role("button", name="Verify now").click()
    expect(card.locator("#verification-note")).to_contain_text("Drill ")
    expect(card.locator("#verification-last .status")).to_have_text(
        re.compile("^(passed|failed)$"), timeout=180_000
    )
    (drill,) = api_get(local_stack, f"/v1/databases/{name}/verifications").json()["verifications"]
    assert drill["status"] == "passed" and drill["backup_id"] == backup["id"], (
        drill["error"],
        drill["checks"],
    )
    expect(card.locator("#verification-last .status")).to_have_text("passed")
    expect(card.locator("#verification-last")).to_contain_text(f"backup {backup['id']}")
    checks = card.locator("#verification-checks tbody tr")
    expect(checks).to_have_count(len(drill["checks"]))
    expect(card.locator('#verification-checks tr[data-passed="false"]')).to_have_count(0)
    expect(card.locator('#verification-checks tr[data-check="row_counts"]')).to_be_visible()
    expect(row.locator(".badge-verified")).to_have_text("Verified")

    # The report: the presigned S3 GET the API hands out, saved as a file; the page stays.
    with page.expect_download() as saved:
        card.get_by_role("link", name="Download the report (JSON)").click()
    report = json.loads(Path(saved.value.path()).read_text())
    assert (
        hashlib.sha256(Path(saved.value.path()).read_bytes()).hexdigest() == drill["report_sha256"]
    )
    assert "items" in json.dumps(report) and "75" in json.dumps(report)
    expect(card).to_be_visible()
    assert console.errors() == []


@pytest.fixture
def pitr_server() -> Iterator[EmbeddedPostgres]:
    """A server of its own: continuous backups reserve a replication slot on it."""
    server = EmbeddedPostgres(name="dash-pitr-restore").init().start()
    try:
        yield server
    finally:
        server.destroy()


def insert(server: EmbeddedPostgres, row: int) -> None:
    server.psql(f"SET synchronous_commit = on; INSERT INTO events VALUES ({row})", "orders")


def test_a_point_in_time_restored_from_the_dashboard_holds_the_rows_committed_before_it(
    page: Page, console: Console, local_stack: RunningStack, pitr_server: EmbeddedPostgres
) -> None:
    name = f"pit-{uuid.uuid4().hex[:6]}"
    url = pitr_server.create_database("orders")
    pitr_server.psql("CREATE TABLE events (id int PRIMARY KEY)", "orders")
    register(local_stack, name, url)
    pitr_url = f"{local_stack.api_url}/v1/databases/{name}/pitr"
    enabled = local_stack.api().put(pitr_url, json={"enabled": True}, timeout=60)
    assert enabled.status_code == 200, enabled.text
    capture_now(local_stack, name)
    until(lambda: pitr_of(local_stack, name)["base_backups"], "first base backup")
    insert(pitr_server, 1)
    insert(pitr_server, 2)
    time.sleep(1.1)
    between = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    insert(pitr_server, 3)
    capture_now(local_stack, name)
    until(
        lambda: (
            (pitr_of(local_stack, name)["latest_recoverable_at"] or "")
            > between.isoformat().replace("+00:00", "Z")
        ),
        "a window past the chosen time",
    )
    target_url = pitr_server.create_database("orders_restored")

    open_database(page, local_stack, local_stack.info["token"], name)
    form = page.locator("#pitr-restore-form")
    local = between.astimezone(ZoneInfo(BROWSER_ZONE))
    form.get_by_label(f"Time in {BROWSER_ZONE}").fill(local.strftime("%Y-%m-%dT%H:%M:%S"))
    form.get_by_role("button", name="Restore to this time").click()
    dialog = page.locator("#restore-dialog")
    dialog.get_by_label("Target database URL").fill(target_url)
    dialog.get_by_role("button", name="Restore", exact=True).click()
    expect(dialog).to_be_hidden()

    shown = page.locator("#restores-table tbody tr[data-restore-id]").first
    expect(shown).to_have_attribute("data-status", "done", timeout=240_000)
    (restore,) = api_get(local_stack, f"/v1/databases/{name}/restores").json()["restores"]
    assert restore["kind"] == "point_in_time" and restore["runner"] == "fargate", restore
    assert datetime.fromisoformat(restore["target_time"]) == between
    expect(shown.locator('[data-label="Restored"]')).to_contain_text("point in time ")
    expect(shown.locator('[data-label="Restored"] time')).to_have_attribute(
        "datetime", restore["target_time"]
    )
    expect(shown.locator('[data-label="Duration (RTO)"]')).not_to_have_text("\u2013")
    rows = pitr_server.psql(
        "SELECT string_agg(id::text, ',' ORDER BY id) FROM events", "orders_restored"
    )
    assert rows == "1,2"
    assert pitr_server.password not in page.content()
    assert console.errors() == []
