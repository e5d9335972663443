"""The dashboard shows health where people look: a Health column in the databases'
list, and above a database that is not ok a banner with its reasons, as text."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import RunningStack
from tests.e2e.test_dashboard import (
    HOSTILE,
    Console,
    browser,  # noqa: F401 (fixture)
    console,  # noqa: F401 (fixture)
    page,  # noqa: F401 (fixture)
    playwright,  # noqa: F401 (fixture)
    register,
    sign_in,
    take_backup,
)

pytestmark = pytest.mark.e2e


def test_a_failing_database_shows_in_the_list_and_its_reasons_in_a_banner(
    page: Page,  # noqa: F811
    console: Console,  # noqa: F811
    local_stack: RunningStack,
    postgres: EmbeddedPostgres,
) -> None:
    failing, fine = f"db_{uuid.uuid4().hex[:10]}", f"db_{uuid.uuid4().hex[:10]}"
    for name in (failing, fine):
        postgres.create_database(name)
        register(local_stack, name, postgres.url(name))
    # A database that refuses connections: its backup fails, and the Backup Failed
    # event has the dispatcher judge its health at once.
    postgres.psql(f"ALTER DATABASE {failing} ALLOW_CONNECTIONS false")
    assert take_backup(local_stack, failing)["status"] == "error"
    assert take_backup(local_stack, fine)["status"] == "done"

    sign_in(page, local_stack)
    failing_row = page.locator(f'#databases-table tr[data-database="{failing}"]')
    # The health is recorded a moment after the backup ends: reload until it shows.
    for _ in range(30):
        if failing_row.locator('td[data-label="Health"]').inner_text() == "failing":
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(failing_row.locator('td[data-label="Health"]')).to_have_text("failing")
    fine_row = page.locator(f'#databases-table tr[data-database="{fine}"]')
    expect(fine_row.locator('td[data-label="Health"]')).to_have_text("ok")

    page.get_by_role("link", name=failing, exact=True).click()
    banner = page.locator("#health-banner")
    expect(banner).to_be_visible()
    expect(banner.locator("#health-title")).to_contain_text("Backups are failing since ")
    reason = banner.locator('li[data-code="backup_failed"]')
    expect(reason).to_contain_text("The last backup failed:")
    expect(reason).to_contain_text("is not currently accepting connections")

    page.get_by_role("link", name="Databases").click()
    page.get_by_role("link", name=fine, exact=True).click()
    expect(page.locator("#database-facts")).to_contain_text("Compression")
    expect(banner).to_be_hidden()
    assert console.errors() == []
    postgres.psql(f"ALTER DATABASE {failing} ALLOW_CONNECTIONS true")


def test_reasons_are_rendered_as_text(
    page: Page,  # noqa: F811
    console: Console,  # noqa: F811
    local_stack: RunningStack,
    postgres: EmbeddedPostgres,
) -> None:
    """A reason carries the server's words (an error line of pg_dump): never markup."""
    name = f"db_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    register(local_stack, name, postgres.url(name))
    health = {
        "status": "warning",
        "since": "2026-12-06T01:00:00Z",
        "reasons": [
            {
                "code": "pitr_lagging",
                "severity": "warning",
                "message": f"Continuous backups are behind: {HOSTILE}",
                "since": "2026-12-06T01:00:00Z",
            }
        ],
    }

    def with_health(route, request) -> None:  # type: ignore[no-untyped-def]
        answer = route.fetch()
        body = answer.json()
        for database in body.get("databases", [body]):
            if database["name"] == name:
                database["health"] = health
        route.fulfill(response=answer, json=body)

    page.route(f"{local_stack.api_url}/v1/databases", with_health)
    page.route(f"{local_stack.api_url}/v1/databases/{name}", with_health)
    sign_in(page, local_stack)
    row = page.locator(f'#databases-table tr[data-database="{name}"]')
    expect(row.locator('td[data-label="Health"]')).to_have_text("warning")
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.locator('#health-reasons li[data-code="pitr_lagging"]')).to_have_text(
        f"Continuous backups are behind: {HOSTILE}"
    )
    expect(page.locator("#health-title")).to_contain_text("Needs attention since ")
    assert page.evaluate("window.__pwned") is None
    assert console.errors() == []
