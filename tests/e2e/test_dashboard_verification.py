"""The dashboard's restore drills in a real headless Chromium, against the local stack:
the Verified badge on a backup's row, the Verification block (last drill, next drill,
measured RTO, the report, the checks) and "Verify now" followed live.

The first test answers the drills' routes with the contract's records (the database's
`verification_status`, `GET/POST …/verifications`, `…/report`) to show a failed drill
and one followed to its end in seconds; the others use the real API (a real drill runs
in test_dashboard_fargate_runs.py)."""

# The dashboard tests' fixtures are imported by name, which ruff sees as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import RunningStack
from tests.e2e.test_dashboard import (  # noqa: F401 (fixtures)
    HOSTILE,
    Console,
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

FAILED_DRILL = "01KBDR1LL000000000000000F1"
NEW_DRILL = "01KBDR1LL000000000000000N2"


def drill(backup_id: str, **changes: Any) -> dict[str, Any]:
    """A drill's record as contract.md gives it: this one failed on its smoke query."""
    return {
        "id": FAILED_DRILL,
        "database": "x",
        "kind": "backup",
        "backup_id": backup_id,
        "target_time": None,
        "status": "failed",
        "runner": "fargate",
        "created_at": "2026-12-06T01:00:00Z",
        "started_at": "2026-12-06T01:00:02Z",
        "finished_at": "2026-12-06T01:00:09Z",
        "restore_seconds": 4.2,
        "server_version": "18.1",
        "source_version": "18.1",
        "checks": [
            {"name": "restore", "passed": True, "detail": "pg_restore ended with no error"},
            {"name": "objects", "passed": True, "detail": "12 of 12 objects of the archive"},
            {"name": "amcheck", "passed": True, "detail": "1 table, 1 index: clean"},
            {"name": "row_counts", "passed": True, "detail": "1 table, 30 rows"},
            {
                "name": "smoke 1",
                "passed": False,
                "detail": f"rows = 0, expected rows >= 1 {HOSTILE}",
            },
        ],
        "tables": 1,
        "rows": 30,
        "report_key": f"databases/x/backups/{backup_id}.verification-{FAILED_DRILL}.json",
        "report_sha256": "0" * 64,
        "error": None,
        **changes,
    }


class DrillsApi:
    """The drills' routes as the drills' API answers them, over the real stack's answers."""

    def __init__(self, page: Page, name: str, backup_id: str, report_url: str) -> None:
        self.name = name
        self.backup_id = backup_id
        self.report_url = report_url
        self.drills = {FAILED_DRILL: drill(backup_id)}
        self.status = {
            "last_id": FAILED_DRILL,
            "last_status": "failed",
            "last_at": "2026-12-06T01:00:09Z",
            "next_at": "2026-12-13T03:00:00Z",
            "restore_seconds": 4.2,
        }
        self.verified = {"verification": "failed", "verified_at": "2026-12-06T01:00:09Z"}
        self.asked_for_new = 0
        self.created: list[Any] = []
        page.route(f"**/v1/databases/{name}", self.database)
        page.route(f"**/v1/databases/{name}/backups?*", self.backups)
        page.route(f"**/v1/databases/{name}/verifications**", self.verifications)

    def database(self, route: Route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        answer = route.fetch()
        body = answer.json()
        body["verification"] = {"enabled": True, "every_days": 7, "hour": 3, "smoke_queries": []}
        body["verification_status"] = self.status
        route.fulfill(response=answer, body=json.dumps(body))

    def backups(self, route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        for backup in body["backups"]:
            if backup["id"] == self.backup_id:
                backup.update(self.verified)
        route.fulfill(response=answer, body=json.dumps(body))

    def verifications(self, route: Route) -> None:
        path = route.request.url.split(f"/v1/databases/{self.name}/verifications", 1)[1]
        if route.request.method == "POST" and path == "":
            self.created.append(route.request.post_data_json)
            self.drills[NEW_DRILL] = drill(
                self.backup_id, id=NEW_DRILL, status="scheduled", created_at="2026-12-06T02:00:00Z",
                started_at=None, finished_at=None, restore_seconds=None, checks=[],
                report_key=None, report_sha256=None,
            )  # fmt: skip
            self.reply(route, 202, self.drills[NEW_DRILL])
        elif path == f"/{NEW_DRILL}":
            self.asked_for_new += 1
            if self.asked_for_new >= 2:
                self.finish_new_drill()
            self.reply(route, 200, self.drills[NEW_DRILL])
        elif path.endswith("/report"):
            self.reply(route, 200, {"url": self.report_url})
        elif path.lstrip("/") in self.drills:
            self.reply(route, 200, self.drills[path.lstrip("/")])
        else:
            self.reply(route, 404, {"error": {"code": "not_found", "message": "no such drill"}})

    def finish_new_drill(self) -> None:
        checks = [dict(check, passed=True) for check in drill(self.backup_id)["checks"][:4]]
        self.drills[NEW_DRILL] = drill(
            self.backup_id, id=NEW_DRILL, status="passed", created_at="2026-12-06T02:00:00Z",
            started_at="2026-12-06T02:00:01Z", finished_at="2026-12-06T02:00:05Z",
            restore_seconds=3.1, checks=checks,
            report_key=f"databases/x/backups/{self.backup_id}.verification-{NEW_DRILL}.json",
        )  # fmt: skip
        self.status = {
            "last_id": NEW_DRILL,
            "last_status": "passed",
            "last_at": "2026-12-06T02:00:05Z",
            "next_at": "2026-12-13T03:00:00Z",
            "restore_seconds": 3.1,
        }
        self.verified = {"verification": "passed", "verified_at": "2026-12-06T02:00:05Z"}

    @staticmethod
    def reply(route: Route, status: int, body: Any) -> None:
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))


def open_database(page: Page, stack: RunningStack, token: str, database: str) -> None:
    sign_in(page, stack, token)
    expect(page.locator("#databases-view")).to_be_visible()
    page.get_by_role("link", name=database, exact=True).click()
    expect(page.get_by_role("heading", name=database, exact=True)).to_be_visible()
    expect(page.locator("#backups-table tr[data-status=done]").first).to_be_visible()


def test_the_last_drill_its_checks_and_report_then_verify_now_followed_until_it_passes(
    page: Page, console: Console, local_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    name = new_database(postgres, rows=30)
    register(local_stack, name, postgres.url(name))
    backup = take_backup(local_stack, name)
    report_url = f"{local_stack.api_url}/reports/{uuid.uuid4().hex}.json"
    # S3 answers a report's presigned GET as a file to save.
    page.route(
        report_url,
        lambda route: route.fulfill(
            status=200,
            headers={"Content-Disposition": 'attachment; filename="report.json"'},
            content_type="application/octet-stream",
            body=json.dumps({"checks": []}),
        ),
    )
    drills = DrillsApi(page, name, backup["id"], report_url)
    operator = new_token(local_stack, "verifier", "operate")
    open_database(page, local_stack, operator, name)

    row = page.locator(f'#backups-table tr[data-backup-id="{backup["id"]}"]')
    badge = row.locator('[data-label="Status"] .badge')
    expect(badge).to_have_text("Verification failed")
    expect(badge).to_have_attribute("title", "A restore drill failed at 2026-12-06 10:00:09 GMT+9")

    card = page.locator("#verification-card")
    expect(card.locator("#verification-last")).to_have_text(
        f"failed {shown_moment('2026-12-06T01:00:09+00:00')[0]} GMT+9 · backup {backup['id']}"
    )
    expect(card.locator("#verification-next")).to_have_text(
        f"{shown_moment('2026-12-13T03:00:00+00:00')[0]} GMT+9 (every 7 days)"
    )
    expect(card.locator("#verification-rto")).to_have_text("4.2 s")
    checks = card.locator("#verification-checks tbody tr")
    expect(checks).to_have_count(5)
    failed = card.locator('#verification-checks tr[data-passed="false"]')
    expect(failed.locator('[data-label="Check"]')).to_have_text("smoke 1")
    expect(failed.locator('[data-label="Detail"]')).to_have_text(
        f"rows = 0, expected rows >= 1 {HOSTILE}"
    )
    assert page.evaluate("window.__pwned") is None

    # The report: a presigned URL asked for when the link is followed, saved as a file.
    with page.expect_download() as saved:
        card.get_by_role("link", name="Download the report (JSON)").click()
    assert saved.value.url == report_url
    assert json.loads(Path(saved.value.path()).read_text()) == {"checks": []}
    expect(card).to_be_visible()

    card.get_by_role("button", name="Verify now").click()
    expect(card.locator("#verification-note")).to_contain_text(f"Drill {NEW_DRILL} is ")
    # Followed live: it passes, the block and the backup's badge say so with no reload.
    expect(card.locator("#verification-last")).to_contain_text("passed", timeout=30_000)
    expect(card.locator("#verification-note")).to_have_text("")
    expect(card.locator("#verification-rto")).to_have_text("3.1 s")
    expect(checks).to_have_count(4)
    expect(card.locator('#verification-checks tr[data-passed="false"]')).to_have_count(0)
    expect(badge).to_have_text("Verified")
    assert drills.created == [{}]
    assert console.errors() == []


@pytest.mark.parametrize("role", ["read", "operate"])
def test_verify_now_is_offered_to_operators_not_readers(
    page: Page, console: Console, local_stack: RunningStack, postgres: EmbeddedPostgres, role: str
) -> None:
    name = new_database(postgres, rows=5)
    register(local_stack, name, postgres.url(name))
    take_backup(local_stack, name)
    token = new_token(local_stack, f"drill-{role}", role)
    open_database(page, local_stack, token, name)
    expect(page.locator("#signed-in-as")).to_have_text(f"drill-{role} ({role})")
    card = page.locator("#verification-card")
    expect(card.get_by_role("heading", name="Verification")).to_be_visible()
    # An API whose database names no drill: the block says so and asks for none.
    expect(card.locator("#verification-last")).to_have_text("No drill yet")
    expect(card.get_by_role("button", name="Verify now").filter(visible=True)).to_have_count(
        1 if role == "operate" else 0
    )
    # The drills' schedule: shown to both, changed by operators.
    expect(
        card.get_by_role("button", name="Save drill settings").filter(visible=True)
    ).to_have_count(1 if role == "operate" else 0)
    every = card.get_by_label("Every (days)")
    expect(every).to_have_value("7")
    if role == "operate":
        expect(every).to_be_enabled()
    else:
        expect(every).to_be_disabled()
    assert console.errors() == []


def test_an_operator_schedules_drills_and_the_next_one_is_shown(
    page: Page, console: Console, local_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    """The drills' settings through the real API (PATCH /v1/databases/{db})."""
    name = new_database(postgres, rows=5)
    register(local_stack, name, postgres.url(name))
    take_backup(local_stack, name)
    operator = new_token(local_stack, f"scheduler-{uuid.uuid4().hex[:4]}", "operate")
    open_database(page, local_stack, operator, name)
    card = page.locator("#verification-card")
    expect(card.locator("#verification-next")).to_have_text("Scheduled drills are disabled")
    expect(
        card.get_by_label("I want this database's backups drilled on a schedule")
    ).not_to_be_checked()

    card.get_by_label("I want this database's backups drilled on a schedule").check()
    card.get_by_label("Every (days)").fill("3")
    card.get_by_label("Starts at").select_option("05:00")
    card.get_by_role("button", name="Save drill settings").click()
    expect(card.locator("#verification-form .saved")).to_have_text("Drill settings saved.")

    answer = local_stack.api().get(f"{local_stack.api_url}/v1/databases/{name}", timeout=30)
    database = answer.json()
    assert {k: database["verification"][k] for k in ("enabled", "every_days", "hour")} == {
        "enabled": True,
        "every_days": 3,
        "hour": 5,
    }
    next_at = database["verification_status"]["next_at"]
    assert next_at
    expect(card.locator("#verification-next time")).to_have_attribute("datetime", next_at)
    expect(card.locator("#verification-next")).to_contain_text("(every 3 days)")

    # A number the API refuses: its words, next to the field; nothing changes.
    card.get_by_label("Every (days)").fill("400")
    card.get_by_role("button", name="Save drill settings").click()
    expect(card.locator('[data-error-for="verification.every_days"]')).not_to_be_empty()
    again = local_stack.api().get(f"{local_stack.api_url}/v1/databases/{name}", timeout=30)
    assert again.json()["verification"]["every_days"] == 3
    assert console.errors(400, 422) == []
