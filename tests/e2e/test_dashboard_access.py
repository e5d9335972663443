"""The dashboard offers what the signed-in token's role allows; admins manage tokens and
read the activity, in a real headless Chromium against the local stack."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import RunningStack
from tests.e2e.test_dashboard import (
    BROWSER_ZONE,
    CHROMIUM,
    CHROMIUM_ARGS,
    Console,
    new_database,
    register,
    sign_in,
    take_backup,
)

pytestmark = pytest.mark.e2e

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"the dashboard's browser tests need Debian's chromium at {CHROMIUM}")
    with sync_playwright() as driver:
        browser = launch(driver)
        try:
            yield browser
        finally:
            browser.close()


def launch(driver: Playwright) -> Browser:
    return driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        timezone_id=BROWSER_ZONE, locale="en-US", viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def console(page: Page) -> Console:
    return Console(page)


def new_token(stack: RunningStack, name: str, role: str, **more: Any) -> str:
    answer = stack.api().post(
        f"{stack.api_url}/v1/tokens", json={"name": name, "role": role, **more}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def call(stack: RunningStack, token: str, method: str, path: str) -> requests.Response:
    return requests.request(
        method, f"{stack.api_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.fixture(scope="module")
def backed_up(local_stack: RunningStack, postgres: EmbeddedPostgres) -> str:
    """A database with one finished backup: what Download and Delete act on."""
    name = new_database(postgres, rows=50)
    register(local_stack, name, postgres.url(name))
    take_backup(local_stack, name)
    return name


def button(page: Page, name: str) -> Any:
    return page.get_by_role("button", name=name, exact=True).filter(visible=True)


def open_database(page: Page, stack: RunningStack, token: str, database: str) -> None:
    sign_in(page, stack, token)
    expect(page.locator("#databases-view")).to_be_visible()
    page.get_by_role("link", name=database, exact=True).click()
    expect(page.get_by_role("heading", name=database, exact=True)).to_be_visible()
    expect(page.locator("#backups-table tr[data-status=done]")).to_have_count(1)


# What each role is offered: Download for all; the rest as the API's route table allows.
OFFERED = {
    "read": set(),
    "operate": {"Trigger manual backup", "Update"},
    "admin": {"Trigger manual backup", "Update", "Delete", "Remove", "Add database"},
}


@pytest.mark.parametrize("role", ["read", "operate", "admin"])
def test_each_role_sees_only_what_it_may_do(
    page: Page, console: Console, local_stack: RunningStack, backed_up: str, role: str
) -> None:
    token = new_token(local_stack, f"sees-{role}", role)
    offered = OFFERED[role]

    sign_in(page, local_stack, token)
    expect(page.locator("#signed-in-as")).to_have_text(f"sees-{role} ({role})")
    row = page.locator(f'#databases-table tr[data-database="{backed_up}"]')
    expect(row).to_be_visible()
    expect(button(page, "Add database")).to_have_count(1 if "Add database" in offered else 0)
    expect(row.get_by_role("button", name="Remove").filter(visible=True)).to_have_count(
        1 if "Remove" in offered else 0
    )
    admin_links = page.get_by_role("link", name=re.compile("^(Tokens|Activity)$"))
    expect(admin_links.filter(visible=True)).to_have_count(2 if role == "admin" else 0)

    page.get_by_role("link", name=backed_up, exact=True).click()
    done = page.locator("#backups-table tr[data-status=done]")
    expect(done).to_have_count(1)
    expect(done.get_by_role("button", name="Download").filter(visible=True)).to_have_count(1)
    expect(done.get_by_role("button", name="Delete").filter(visible=True)).to_have_count(
        1 if "Delete" in offered else 0
    )
    expect(button(page, "Trigger manual backup")).to_have_count(
        1 if "Trigger manual backup" in offered else 0
    )
    # The schedule and the retention: shown to all, changed by operate and admin.
    forms = page.locator("#schedule-form, #retention-form")
    expect(forms.get_by_role("button", name="Update").filter(visible=True)).to_have_count(
        2 if "Update" in offered else 0
    )
    if "Update" in offered:
        expect(page.locator("#schedule-hour")).to_be_enabled()
    else:
        expect(page.locator("#schedule-hour")).to_be_disabled()
        expect(page.locator("#retention-daily")).to_be_disabled()
        expect(page.locator("#retention-daily")).not_to_have_value("")
    assert console.errors() == []


def test_a_refusal_for_the_role_is_said_and_keeps_the_user_signed_in(
    page: Page, console: Console, local_stack: RunningStack, backed_up: str
) -> None:
    token = new_token(local_stack, "ops", "operate")
    open_database(page, local_stack, token, backed_up)

    # Keeping fewer backups than the defaults needs admin: the API says so.
    page.get_by_label("Daily").fill("1")
    form = page.locator("#retention-form")
    form.get_by_role("button", name="Update").click()
    expect(form.locator('[data-error-for=""]')).to_have_text(
        "this needs the admin role (keeping fewer backups than the default retention); "
        "the token has the operate role"
    )
    expect(page.locator("#database-view")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('pgbackups.token')") == token
    assert console.errors(403) == []


def test_an_admin_creates_a_token_sees_its_secret_once_and_revokes_it(
    page: Page, console: Console, local_stack: RunningStack
) -> None:
    sign_in(page, local_stack)
    page.get_by_role("link", name="Tokens").click()
    expect(page.get_by_role("heading", name="Tokens")).to_be_visible()

    view = page.locator("#tokens-view")
    view.get_by_label("Name").fill("laptop")
    view.get_by_label("Role").select_option("read")
    view.get_by_label("Expires in days (optional)").fill("7")
    view.get_by_role("button", name="Create token").click()

    secret_field = page.get_by_label("Token laptop")
    expect(secret_field).to_be_visible()
    expect(secret_field).to_have_attribute("readonly", "")
    expect(page.locator("#new-token-note")).to_have_text(
        "Copy it now: it cannot be shown again (only a salted hash of it is kept)."
    )
    secret = secret_field.input_value()
    assert secret.startswith("pgb_")
    row = page.locator('#tokens-table tr[data-token="laptop"]')
    expect(row).to_contain_text("read")
    expect(row.locator('td[data-label="Expires"] time')).to_have_count(1)

    # The secret works, for what a read token may do.
    who = call(local_stack, secret, "GET", "/v1/token")
    assert who.status_code == 200, who.text
    assert who.json()["name"] == "laptop"
    assert who.json()["role"] == "read"
    assert call(local_stack, secret, "GET", "/v1/databases").status_code == 200

    # Shown once: leaving the page and coming back does not show it again.
    page.get_by_role("link", name="pgbackups").click()
    expect(page.locator("#databases-view")).to_be_visible()
    page.get_by_role("link", name="Tokens").click()
    expect(row).to_be_visible()
    expect(page.get_by_label("Token laptop")).to_be_hidden()
    assert secret not in page.content()

    row.get_by_role("button", name="Revoke").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("Revoke laptop?")
    dialog.get_by_role("button", name="Revoke token").click()
    expect(row).to_have_count(0)

    # The local gateway does not cache the authorizer's answers (API Gateway keeps one for
    # up to a minute): refused at once.
    refused = call(local_stack, secret, "GET", "/v1/databases")
    assert (refused.status_code, refused.json()) == (403, {"message": "Forbidden"})
    assert console.errors() == []


def test_the_activity_page_shows_the_trail_newest_first_a_page_at_a_time(
    page: Page, console: Console, local_stack: RunningStack
) -> None:
    reader = new_token(local_stack, "curious", "read")
    # 51 refusals: more than a page.
    for _ in range(51):
        assert call(local_stack, reader, "GET", "/v1/audit").status_code == 403
    new_token(local_stack, "last-one", "read")

    sign_in(page, local_stack)
    page.get_by_role("link", name="Activity").click()
    rows = page.locator("#activity-table tbody tr")
    expect(rows).to_have_count(50)
    newest = rows.first
    expect(newest.locator('[data-label="Token"]')).to_have_text("deploy")
    expect(newest.locator('[data-label="Role"]')).to_have_text("admin")
    expect(newest.locator('[data-label="Route"]')).to_have_text("POST /v1/tokens")
    expect(newest.locator('[data-label="Target"]')).to_have_text("/v1/tokens")
    expect(newest.locator('[data-label="Status"]')).to_have_text("201")
    expect(newest.locator('[data-label="Source IP"]')).to_have_text(re.compile(r"\S"))
    refusal = rows.nth(1)
    expect(refusal.locator('[data-label="Token"]')).to_have_text("curious")
    expect(refusal.locator('[data-label="Route"]')).to_have_text("GET /v1/audit")
    expect(refusal.locator('[data-label="Status"]')).to_have_text("403")

    page.get_by_role("button", name="Load more").click()
    expect(rows.nth(50)).to_be_visible()
    # Newest first across pages: the sequence numbers only go down.
    seqs = [int(s) for s in rows.evaluate_all("rows => rows.map(r => r.dataset.seq)")]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == len(seqs)
    assert console.errors() == []


def test_a_read_token_is_told_the_tokens_page_is_not_for_it(
    page: Page, console: Console, local_stack: RunningStack
) -> None:
    token = new_token(local_stack, "nosy", "read")
    sign_in(page, local_stack, token)
    expect(page.locator("#signed-in-as")).to_have_text("nosy (read)")
    page.goto(f"{local_stack.api_url}/#/tokens")
    expect(page.locator("#tokens-error")).to_have_text(
        "this needs the admin role; the token has the read role"
    )
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert console.errors(403) == []
