"""A backup's hold, its restore and the Restores list in a real headless Chromium, against
a local stack that locks backups as the template does by default (governance, 7 days):
what a person sees for each role, and what the API and the target database then hold."""

# The dashboard tests' fixtures are imported by name, which ruff sees as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
import requests
from playwright.sync_api import Page, Route, expect

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import RunningStack, start_stack
from tests.e2e.test_dashboard import (  # noqa: F401 (fixtures)
    HOSTILE,
    Console,
    api_get,
    browser,
    console,
    new_database,
    page,
    playwright,
    register,
    shown_moment,
    sign_in,
    take_backup,
)
from tests.e2e.test_dashboard_access import new_token
from tests.e2e.test_dashboard_pitr import answer_pitr_with, contract_pitr

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The template's default Object Lock: every backup has a date before which it stays."""
    stack = start_stack(tmp_path_factory.mktemp("locked-dashboard-stack"))
    try:
        yield stack
    finally:
        assert stack.stop() == 0, stack.log()[-3000:]


@pytest.fixture(scope="module")
def backed_up(local_stack: RunningStack, postgres: EmbeddedPostgres) -> dict[str, Any]:
    """A database with one done backup: `{name, backup}`."""
    name = new_database(postgres, rows=120)
    register(local_stack, name, postgres.url(name))
    return {"name": name, "backup": take_backup(local_stack, name)}


def open_database(
    page: Page, stack: RunningStack, token: str, database: str, *, backed_up: bool = True
) -> None:
    sign_in(page, stack, token)
    expect(page.locator("#databases-view")).to_be_visible()
    page.get_by_role("link", name=database, exact=True).click()
    expect(page.get_by_role("heading", name=database, exact=True)).to_be_visible()
    if backed_up:
        expect(page.locator("#backups-table tr[data-status=done]").first).to_be_visible()
    else:
        expect(page.locator("#backups-empty")).to_be_visible()


def visible_button(scope: Any, name: str) -> Any:
    return scope.get_by_role("button", name=name, exact=True).filter(visible=True)


def backup_of(stack: RunningStack, name: str, backup_id: str) -> dict[str, Any]:
    response = api_get(stack, f"/v1/databases/{name}/backups/{backup_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- hold and release ---------------------------------------------------------------------


def test_an_operator_holds_an_admin_cannot_delete_it_and_releases_it(
    page: Page, console: Console, local_stack: RunningStack, backed_up: dict[str, Any]
) -> None:
    name, backup = backed_up["name"], backed_up["backup"]
    row = page.locator(f'#backups-table tr[data-backup-id="{backup["id"]}"]')
    operator = new_token(local_stack, "holder", "operate")
    open_database(page, local_stack, operator, name)

    # The lock's date, in the browser's zone to the minute, UTC on hover.
    local, utc = shown_moment(backup["locked_until"])
    locked = row.locator(".locked-until time")
    expect(row.locator(".locked-until")).to_have_text(f"Locked until {local[:16]} GMT+9")
    expect(locked).to_have_attribute("title", utc)
    expect(row.locator(".badge-held")).to_have_count(0)

    visible_button(row, "Hold").click()
    expect(row.locator(".badge-held")).to_have_text("Held")
    assert backup_of(local_stack, name, backup["id"])["legal_hold"] is True
    # Releasing lets retention delete it: admins only.
    expect(visible_button(row, "Hold")).to_have_count(0)
    expect(visible_button(row, "Release")).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    open_database(page, local_stack, local_stack.info["token"], name)
    expect(row.locator(".badge-held")).to_have_text("Held")
    # A locked backup's Delete: the API's own refusal, said on the row; nothing changes.
    refusal = requests.delete(
        f"{local_stack.api_url}/v1/databases/{name}/backups/{backup['id']}",
        headers={"Authorization": f"Bearer {local_stack.info['token']}"},
        timeout=30,
    )
    assert refusal.status_code == 409, refusal.text
    assert refusal.json()["error"]["code"] == "backup_locked"
    visible_button(row, "Delete").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete backup").click()
    expect(row.locator(".row-actions .error")).to_have_text(refusal.json()["error"]["message"])
    expect(row).to_be_visible()

    visible_button(row, "Release").click()
    expect(row.locator(".badge-held")).to_have_count(0)
    expect(visible_button(row, "Hold")).to_have_count(1)
    assert backup_of(local_stack, name, backup["id"])["legal_hold"] is False
    assert console.errors(409) == []


# -- restores -----------------------------------------------------------------------------


def count_items(postgres: EmbeddedPostgres, database: str) -> int:
    with psycopg2.connect(postgres.url(database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM items")
        (count,) = cursor.fetchone()
    connection.close()
    return int(count)


def restore_of(stack: RunningStack, name: str, restore_id: str) -> dict[str, Any]:
    response = api_get(stack, f"/v1/databases/{name}/restores/{restore_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def duration_text(seconds: float) -> str:
    """How the page writes a duration under a minute (dom.js formatDuration)."""
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def test_an_operator_restores_a_backup_into_another_database_and_sees_it_done_with_its_rto(
    page: Page,
    console: Console,
    local_stack: RunningStack,
    postgres: EmbeddedPostgres,
    backed_up: dict[str, Any],
) -> None:
    name, backup = backed_up["name"], backed_up["backup"]
    target = f"target_{uuid.uuid4().hex[:8]}"
    target_url = postgres.create_database(target)
    operator = new_token(local_stack, "restorer", "operate")
    open_database(page, local_stack, operator, name)
    expect(page.locator("#restores-empty")).to_be_visible()

    row = page.locator(f'#backups-table tr[data-backup-id="{backup["id"]}"]')
    visible_button(row, "Restore").click()
    dialog = page.locator("#restore-dialog")
    expect(dialog.get_by_role("heading")).to_have_text(f"Restore backup {backup['id']}")
    url_field = dialog.get_by_label("Target database URL")
    expect(url_field).to_have_attribute("type", "password")
    expect(dialog.get_by_label("Drop the target's objects first (clean)")).to_be_checked()
    url_field.fill(target_url)
    dialog.get_by_role("button", name="Restore", exact=True).click()
    expect(dialog).to_be_hidden()

    restores = page.locator("#restores-table tbody tr[data-restore-id]")
    expect(restores).to_have_count(1)
    shown = restores.first
    restore_id = shown.get_attribute("data-restore-id")
    assert restore_id
    expect(page.locator("#restores-note")).to_contain_text(f"Restore {restore_id} into")
    # Followed live to its end, with no reload.
    expect(shown).to_have_attribute("data-status", "done", timeout=90_000)
    done = restore_of(local_stack, name, restore_id)
    assert done["status"] == "done" and done["backup_id"] == backup["id"]
    expect(shown.locator('[data-label="Into"]')).to_have_text(done["target"])
    expect(shown.locator('[data-label="Restored"]')).to_have_text(f"backup {backup['id']}")
    total = done["progress"]["total"]
    expect(shown.locator('[data-label="Progress"]')).to_have_text(f"{total} of {total} entries")
    expect(shown.locator('[data-label="Duration (RTO)"]')).to_have_text(
        duration_text(done["duration_seconds"])
    )
    # The rows are in the target; its password is nowhere in the page.
    assert count_items(postgres, target) == 120
    assert postgres.password not in page.content()
    assert console.errors() == []


def test_restoring_into_the_source_asks_for_its_name_and_only_an_admin_may(
    page: Page,
    console: Console,
    local_stack: RunningStack,
    postgres: EmbeddedPostgres,
    backed_up: dict[str, Any],
) -> None:
    name, backup = backed_up["name"], backed_up["backup"]
    row = page.locator(f'#backups-table tr[data-backup-id="{backup["id"]}"]')
    dialog = page.locator("#restore-dialog")
    operator = new_token(local_stack, "in-place-operator", "operate")
    open_database(page, local_stack, operator, name)

    visible_button(row, "Restore").click()
    dialog.get_by_label("Target database URL").fill(postgres.url(name))
    dialog.get_by_role("button", name="Restore", exact=True).click()
    alert = dialog.locator('[data-error-for=""]')
    expect(alert).to_contain_text(f"the target is {name} itself")
    expect(alert).to_contain_text(f"Restoring into {name} itself needs the admin role.")
    expect(dialog.get_by_label(f"Type {name} to restore into it")).to_be_hidden()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    page.get_by_role("button", name="Sign out").click()
    open_database(page, local_stack, local_stack.info["token"], name)
    before = len(api_get(local_stack, f"/v1/databases/{name}/restores").json()["restores"])
    visible_button(row, "Restore").click()
    # Emptied when the dialog closed: the URL is typed again.
    expect(dialog.get_by_label("Target database URL")).to_have_value("")
    dialog.get_by_label("Target database URL").fill(postgres.url(name))
    dialog.get_by_role("button", name="Restore", exact=True).click()
    expect(alert).to_contain_text(f'send "confirm": "{name}" to restore in place')
    confirm = dialog.get_by_label(f"Type {name} to restore into it")
    submit = dialog.get_by_role("button", name=f"Restore into {name}")
    expect(submit).to_be_disabled()
    confirm.fill(name[:-1])
    expect(submit).to_be_disabled()
    confirm.fill(name)
    submit.click()
    expect(dialog).to_be_hidden()
    restores = page.locator("#restores-table tbody tr[data-restore-id]")
    expect(restores).to_have_count(before + 1)
    expect(restores.first).to_have_attribute("data-status", "done", timeout=90_000)
    assert count_items(postgres, name) == 120
    assert console.errors(409) == []


def test_a_refused_target_is_said_in_the_dialog_without_its_password_and_nothing_starts(
    page: Page,
    console: Console,
    local_stack: RunningStack,
    postgres: EmbeddedPostgres,
    backed_up: dict[str, Any],
) -> None:
    name, backup = backed_up["name"], backed_up["backup"]
    open_database(page, local_stack, local_stack.info["token"], name)
    before = len(api_get(local_stack, f"/v1/databases/{name}/restores").json()["restores"])
    row = page.locator(f'#backups-table tr[data-backup-id="{backup["id"]}"]')
    visible_button(row, "Restore").click()
    dialog = page.locator("#restore-dialog")
    dialog.get_by_label("Target database URL").fill(postgres.url(name, password="wrong-pw-7"))
    dialog.get_by_role("button", name="Restore", exact=True).click()
    error = dialog.locator('[data-error-for="target_url"]')
    expect(error).to_contain_text('password authentication failed for user "postgres"')
    assert "wrong-pw-7" not in error.inner_text()
    expect(dialog).to_be_visible()
    after = api_get(local_stack, f"/v1/databases/{name}/restores").json()["restores"]
    assert len(after) == before
    assert console.errors(422) == []


def test_a_restore_that_stopped_halfway_says_why_and_that_the_target_may_be_partial(
    page: Page, console: Console, local_stack: RunningStack, backed_up: dict[str, Any]
) -> None:
    """The API's record of such a restore (answered by the page's route: a restore killed
    halfway is the runners' tests' business); its words stay text."""
    name, backup = backed_up["name"], backed_up["backup"]
    partial = (
        "the target may be partial: 7 of 12 entries of the archive were restored into "
        "127.0.0.1:5432/shop before the restore stopped; restore again (clean) to redo it"
    )
    failed = {
        "id": "01KBRESTORE0000000000000001",
        "kind": "backup",
        "backup_id": backup["id"],
        "target_time": None,
        "target": "127.0.0.1:5432/shop",
        "tables": ["items"],
        "schemas": [],
        "status": "error",
        "runner": "lambda",
        "created_at": "2026-12-06T02:00:00Z",
        "started_at": "2026-12-06T02:00:01Z",
        "finished_at": "2026-12-06T02:00:31Z",
        "duration_seconds": 30.0,
        "progress": {"restored": 7, "total": 12},
        "warnings": [partial],
        "error": f"pg_restore: error: connection lost {HOSTILE}",
    }

    def fulfil(route: Route) -> None:
        route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"restores": [failed], "next_cursor": None}),
        )

    page.route(f"**/v1/databases/{name}/restores?*", fulfil)
    open_database(page, local_stack, local_stack.info["token"], name)
    shown = page.locator(f'#restores-table tr[data-restore-id="{failed["id"]}"]')
    expect(shown).to_have_attribute("data-status", "error")
    expect(shown.locator('[data-label="Progress"]')).to_have_text("7 of 12 entries")
    expect(shown.locator('[data-label="Duration (RTO)"]')).to_have_text("30 s")
    expect(shown.locator('[data-label="Restored"]')).to_have_text(
        f"backup {backup['id']}tables: items"
    )
    notes = page.locator(f'#restores-table tr[data-notes-for="{failed["id"]}"]')
    expect(notes.locator(".reason")).to_have_text(failed["error"])
    expect(notes.locator(".warning")).to_have_text(partial)
    assert page.evaluate("window.__pwned") is None
    assert console.errors() == []


# -- what each role is offered ------------------------------------------------------------

# Restore and Hold for operate and admin; Release (a held backup) for admin only.
OFFERED = {"read": set(), "operate": {"Restore", "Hold"}, "admin": {"Restore", "Hold"}}


@pytest.mark.parametrize("role", ["read", "operate", "admin"])
def test_each_role_sees_only_the_restore_and_hold_it_may_use(
    page: Page, console: Console, local_stack: RunningStack, backed_up: dict[str, Any], role: str
) -> None:
    token = new_token(local_stack, f"offered-{role}", role)
    open_database(page, local_stack, token, backed_up["name"])
    expect(page.locator("#signed-in-as")).to_have_text(f"offered-{role} ({role})")
    row = page.locator(f'#backups-table tr[data-backup-id="{backed_up["backup"]["id"]}"]')
    expect(visible_button(row, "Download")).to_have_count(1)
    for action in ("Restore", "Hold"):
        expect(visible_button(row, action)).to_have_count(1 if action in OFFERED[role] else 0)
    # The Restores list is there for every role to read.
    expect(page.get_by_role("heading", name="Restores")).to_be_visible()
    assert console.errors() == []


# -- a point in time ----------------------------------------------------------------------


def test_a_point_in_time_is_picked_in_the_browsers_zone_inside_a_range_and_sent_with_its_offset(
    page: Page, console: Console, local_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    """The ranges are the contract's (answered by the page's route, as in
    test_dashboard_pitr.py); the restore is asked of the real API, whose answer is shown."""
    name = f"pit-{uuid.uuid4().hex[:6]}"
    postgres.create_database(name)
    register(local_stack, name, postgres.url(name))
    target_url = postgres.create_database(f"pit_target_{uuid.uuid4().hex[:6]}")
    answer_pitr_with(page, name, [contract_pitr()])
    reader = new_token(local_stack, f"pit-reader-{uuid.uuid4().hex[:4]}", "read")
    open_database(page, local_stack, reader, name, backed_up=False)
    expect(page.locator("#pitr-ranges li")).to_have_count(2)
    expect(page.get_by_role("heading", name="Restore to a point in time")).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    open_database(page, local_stack, local_stack.info["token"], name, backed_up=False)
    form = page.locator("#pitr-restore-form")
    expect(form.get_by_role("heading")).to_have_text("Restore to a point in time")
    time_field = form.get_by_label("Time in Asia/Tokyo")
    # The latest recoverable second, in the browser's zone (02:40:13 UTC).
    expect(time_field).to_have_value("2026-12-06T11:40:13")

    # 07:00 in Tokyo is 22:00 UTC: in the break between the two ranges.
    time_field.fill("2026-12-06T07:00:00")
    form.get_by_role("button", name="Restore to this time").click()
    expect(form.locator('[data-error-for="target_time"]')).to_have_text(
        "2026-12-06 07:00:00 GMT+9 is outside the recoverable ranges: "
        "choose a time inside one of them."
    )
    dialog = page.locator("#restore-dialog")
    expect(dialog).to_be_hidden()

    time_field.fill("2026-12-06T03:30:15")
    form.get_by_role("button", name="Restore to this time").click()
    expect(dialog.get_by_role("heading")).to_have_text(
        f"Restore {name} as it was at 2026-12-06 03:30:15 GMT+9"
    )
    dialog.get_by_label("Target database URL").fill(target_url)
    with page.expect_response(
        lambda r: r.url.endswith(f"/v1/databases/{name}/restores") and r.request.method == "POST"
    ) as answered:
        dialog.get_by_role("button", name="Restore", exact=True).click()
    response = answered.value
    sent = response.request.post_data_json
    assert sent["target_time"] == "2026-12-06T03:30:15+09:00"
    assert "backup_id" not in sent
    # The API's refusal as its words, in the dialog: this stack has no continuous backups
    # of the database (its ranges are the page's route's). test_dashboard_fargate_runs.py
    # restores a real one.
    assert response.status == 409, response.text()
    refusal = response.json()["error"]
    assert refusal["code"] == "pitr_disabled"
    expect(dialog.locator('[data-error-for=""]')).to_have_text(refusal["message"])
    expect(dialog).to_be_visible()
    assert postgres.password not in page.content()
    assert console.errors(409) == []
