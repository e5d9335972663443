"""The dashboard's Continuous backups block in a real headless Chromium, against the local
stack: enabling (a refused server's message shown as the API's words), changing and
disabling; and every recoverable range, the breaks and the lag in words, as the API's
continuous-backups object gives them (answered by the page's route where the test needs
ranges and breaks this stack cannot produce in a test's time)."""

# The dashboard tests' fixtures are imported by name, which ruff sees as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from pgbackups_local.postgres import EmbeddedPostgres, free_port
from tests.e2e.conftest import RunningStack
from tests.e2e.test_dashboard import (  # noqa: F401 (fixtures)
    HOSTILE,
    Console,
    browser,
    console,
    open_backups_tab,
    page,
    pitr_of,
    playwright,
    register,
    shown_moment,
    until,
)

pytestmark = pytest.mark.e2e

BASE_1 = "01KB3ZQ4Y6M7T2N8S0F1E9V5B1"
BASE_2 = "01KB3ZQ4Y6M7T2N8S0F1E9V5B2"


def contract_pitr(**changes: Any) -> dict[str, Any]:
    """GET …/pitr with two ranges, a healed break and one that lasts (reason with markup)."""
    return {
        "enabled": True,
        "status": "broken",
        "broken_reason": f"could not connect: connection refused {HOSTILE}",
        "broken_since": "2026-12-06T02:41:00Z",
        "base_backup_every_days": 2,
        "window_days": 9,
        "recoverable_ranges": [
            {
                "from": "2026-12-05T16:19:00Z",
                "to": "2026-12-05T21:53:10Z",
                "base_backup_id": BASE_1,
            },
            {
                "from": "2026-12-05T22:25:00Z",
                "to": "2026-12-06T02:40:13Z",
                "base_backup_id": BASE_2,
            },
        ],
        "earliest_recoverable_at": "2026-12-05T16:19:00Z",
        "latest_recoverable_at": "2026-12-06T02:40:13Z",
        "breaks": [
            {
                "at": "2026-12-05T21:53:10Z",
                "reason": "the replication slot pgbackups_shop was dropped",
                "chain_id": "01KB3ZQ4Y6M7T2N8S0F1E9V5C1",
                "recovered_at": "2026-12-05T22:25:00Z",
                "gap_seconds": 1910.0,
            },
            {
                "at": "2026-12-06T02:41:00Z",
                "reason": f"could not connect: connection refused {HOSTILE}",
                "chain_id": "01KB3ZQ4Y6M7T2N8S0F1E9V5C2",
                "recovered_at": None,
                "gap_seconds": None,
            },
        ],
        "lag_seconds": 13.2,
        "last_archived_at": "2026-12-06T02:40:13Z",
        "last_archived_wal": "00000001000000000000002A",
        "history_kept_until": None,
        "base_backups": [],
        "base_backup_in_progress": None,
        "last_base_backup_error": None,
        **changes,
    }


def answer_pitr_with(page: Page, name: str, answers: list[dict[str, Any]]) -> None:
    """The page's GET …/pitr answered with `answers[0]` (changed by the test as it goes)."""

    def fulfil(route: Route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answers[0]))

    page.route(f"**/v1/databases/{name}/pitr", fulfil)


def test_every_range_the_breaks_and_the_lag_in_words_then_history_kept_after_disabling(
    page: Page, console: Console, local_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    name = f"ranges-{uuid.uuid4().hex[:6]}"
    postgres.create_database(name)
    register(local_stack, name, postgres.url(name))
    answers = [contract_pitr()]
    answer_pitr_with(page, name, answers)
    open_backups_tab(page, local_stack, name)
    card = page.locator("#pitr-card")

    expect(card.locator(".status")).to_have_text("broken")
    broken = card.locator("#pitr-broken")
    expect(broken).to_be_visible()
    local_since, utc_since = shown_moment("2026-12-06T02:41:00+00:00")
    expect(broken).to_contain_text(f"Broken since {local_since}")
    expect(broken.locator("time")).to_have_attribute("title", utc_since)
    expect(card.locator("#pitr-reason")).to_have_text(
        f"could not connect: connection refused {HOSTILE}"
    )

    ranges = card.locator("#pitr-ranges li").filter(visible=True)
    expect(ranges).to_have_count(2)
    for item, (start, end) in zip(
        ranges.all(),
        [("2026-12-05T16:19:00+00:00", "2026-12-05T21:53:10+00:00"),
         ("2026-12-05T22:25:00+00:00", "2026-12-06T02:40:13+00:00")],
        strict=True,
    ):  # fmt: skip
        expect(item).to_have_text(
            re.compile(rf"^from {shown_moment(start)[0]} \S+ to {shown_moment(end)[0]} \S+$")
        )
        expect(item.locator("time").first).to_have_attribute("title", shown_moment(start)[1])
    # The time line: one bar per range, a blank where the break left nothing.
    bars = card.locator("#pitr-timeline rect.range")
    expect(bars).to_have_count(2)
    first_end = float(bars.nth(0).get_attribute("x") or 0) + float(
        bars.nth(0).get_attribute("width") or 0
    )
    assert float(bars.nth(1).get_attribute("x") or 0) > first_end + 1

    expect(card.locator("#pitr-lag")).to_have_text("13 s behind")
    expect(card.locator("#pitr-archived")).to_contain_text("00000001000000000000002A at ")
    expect(card.locator("#pitr-archived time")).to_have_attribute(
        "title", shown_moment("2026-12-06T02:40:13+00:00")[1]
    )
    rows = card.locator("#pitr-breaks-table tbody tr").filter(visible=True)
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td[data-label=Reason]")).to_have_text(
        "the replication slot pgbackups_shop was dropped"
    )
    expect(rows.nth(0).locator("td[data-label=Gap]")).to_have_text("31 min 50 s")
    expect(rows.nth(0).locator("td[data-label='Recoverable again at'] time")).to_have_attribute(
        "title", shown_moment("2026-12-05T22:25:00+00:00")[1]
    )
    expect(rows.nth(1).locator("td[data-label=Reason]")).to_have_text(
        f"could not connect: connection refused {HOSTILE}"
    )
    expect(rows.nth(1).locator("td[data-label=Gap]")).to_have_text("ongoing")
    # The form shows the settings in force.
    expect(page.get_by_label("Base backup every (days)")).to_have_value("2")
    expect(page.get_by_label("History kept (days)")).to_have_value("9")
    expect(page.get_by_role("button", name="Save changes")).to_be_visible()
    expect(page.get_by_role("button", name="Disable continuous backups")).to_be_visible()

    # Disabled with history kept: until when, and its ranges; no live facts.
    answers[0] = contract_pitr(
        enabled=False, status="disabled", broken_reason=None, broken_since=None,
        history_kept_until="2026-12-15T02:40:13Z",
    )  # fmt: skip
    kept = card.locator("#pitr-kept")
    expect(kept).to_be_visible(timeout=30_000)  # the next refresh
    expect(kept).to_have_text(
        re.compile(r"^Disabled; history kept until 2026-12-15 11:40:13 \S+\.$")
    )
    expect(ranges).to_have_count(2)
    expect(card.locator("#pitr-details")).to_be_hidden()
    expect(card.locator("#pitr-disabled")).to_be_hidden()
    expect(page.get_by_role("button", name="Enable continuous backups")).to_be_visible()
    expect(page.get_by_role("button", name="Disable continuous backups")).to_be_hidden()

    assert page.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert console.errors() == []


def test_an_older_api_without_ranges_shows_its_window_as_one_range(
    page: Page, console: Console, local_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    name = f"older-{uuid.uuid4().hex[:6]}"
    postgres.create_database(name)
    register(local_stack, name, postgres.url(name))
    new_fields = ("recoverable_ranges", "broken_since", "breaks", "last_archived_wal",
                  "history_kept_until")  # fmt: skip
    older = {k: v for k, v in contract_pitr(status="ok", broken_reason=None).items()
             if k not in new_fields}  # fmt: skip
    answer_pitr_with(page, name, [older])
    open_backups_tab(page, local_stack, name)
    card = page.locator("#pitr-card")
    expect(card.locator(".status")).to_have_text("ok")
    expect(card.locator("#pitr-ranges li").filter(visible=True)).to_have_count(1)
    expect(card.locator("#pitr-lag")).to_have_text("13 s behind")
    expect(card.locator("#pitr-breaks-block")).to_be_hidden()
    expect(card.locator("#pitr-broken")).to_be_hidden()
    assert console.errors() == []


@pytest.fixture
def pitr_server() -> Iterator[EmbeddedPostgres]:
    """A server of its own: continuous backups reserve a replication slot on it."""
    server = EmbeddedPostgres(name="dash-pitr-form").init().start()
    try:
        yield server
    finally:
        server.destroy()


def test_enable_with_a_refused_url_then_the_databases_own_change_and_disable(
    page: Page, console: Console, local_stack: RunningStack, pitr_server: EmbeddedPostgres
) -> None:
    name = f"form-{uuid.uuid4().hex[:6]}"
    register(local_stack, name, pitr_server.create_database("orders"))
    pitr_url = f"{local_stack.api_url}/v1/databases/{name}/pitr"
    try:
        open_backups_tab(page, local_stack, name)
        card = page.locator("#pitr-card")
        expect(card.locator("#pitr-disabled")).to_be_visible()
        url_field = page.get_by_label("Replication URL")
        expect(url_field).to_have_attribute("type", "password")

        # A server nobody listens on: the API's 422, in its words, as text; nothing changed.
        url_field.fill(f"postgresql://streamer:Never-shown-7@127.0.0.1:{free_port()}/orders")
        with page.expect_response(lambda r: r.url == pitr_url and r.request.method == "PUT") as put:
            page.get_by_role("button", name="Enable continuous backups").click()
        assert put.value.status == 422
        message = put.value.json()["error"]["message"]
        shown = card.locator("#pitr-form .error").filter(visible=True)
        expect(shown).to_have_text(message)
        assert "Never-shown-7" not in (card.text_content() or "")
        assert pitr_of(local_stack, name)["enabled"] is False

        # Empty: the database's own URL; the history window as chosen.
        url_field.fill("")
        page.get_by_label("History kept (days)").fill("3")
        page.get_by_role("button", name="Enable continuous backups").click()
        expect(card.locator("#pitr-form .saved")).to_have_text(
            f"Continuous backups enabled for {name}. The first base backup is on its way."
        )
        expect(card.locator(".status")).to_have_text("ok")
        expect(url_field).to_have_value("")
        enabled = pitr_of(local_stack, name)
        assert (enabled["enabled"], enabled["window_days"]) == (True, 3)

        # A change of one setting keeps the other.
        page.get_by_label("History kept (days)").fill("5")
        page.get_by_role("button", name="Save changes").click()
        expect(card.locator("#pitr-form .saved")).to_have_text(
            f"Continuous backups of {name} changed."
        )
        changed = until(
            lambda: (a := pitr_of(local_stack, name))["window_days"] == 5 and a, "change"
        )
        assert changed["base_backup_every_days"] == enabled["base_backup_every_days"]

        # Disabling asks, says the history expires with the window, then is done.
        page.get_by_role("button", name="Disable continuous backups").click()
        dialog = page.locator("#confirm-dialog")
        expect(dialog).to_contain_text("expires with the window (5 days)")
        dialog.get_by_role("button", name="Disable continuous backups").click()
        expect(card.locator("#pitr-form .saved")).to_have_text(
            f"Continuous backups disabled for {name}."
        )
        expect(page.get_by_role("button", name="Enable continuous backups")).to_be_visible()
        assert pitr_of(local_stack, name)["enabled"] is False
        assert pitr_of(local_stack, name)["window_days"] == 5
        assert console.errors(422) == []
    finally:
        local_stack.api().put(pitr_url, json={"enabled": False}, timeout=60)
