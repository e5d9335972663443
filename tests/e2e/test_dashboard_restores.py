"""A backup's hold, its restore and the Restores list in a real headless Chromium, against
a local stack that locks backups as the template does by default (governance, 7 days):
what a person sees for each role, and what the API and the target database then hold."""

# The dashboard tests' fixtures are imported by name, which ruff sees as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import RunningStack, start_stack
from tests.e2e.test_dashboard import (  # noqa: F401 (fixtures)
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


def open_database(page: Page, stack: RunningStack, token: str, database: str) -> None:
    sign_in(page, stack, token)
    expect(page.locator("#databases-view")).to_be_visible()
    page.get_by_role("link", name=database, exact=True).click()
    expect(page.get_by_role("heading", name=database, exact=True)).to_be_visible()
    expect(page.locator("#backups-table tr[data-status=done]").first).to_be_visible()


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
