"""`backups-verify`, `verifications`, `verifications-info`, `verifications-config` on the
fake API (cli_commands.fakes): what the CLI sends, how it follows a drill, what it prints
and its exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pgbackups_cli import verifications as verifications_module
from tests.unit.cli_commands.fakes import (
    NEW_ID,
    VERIFICATION_CHECKS,
    VERIFICATION_ID,
    FakeApi,
    database,
    error,
    run,
    verification,
)

pytestmark = pytest.mark.unit

PATH = "/v1/databases/shop/verifications"
ONE = f"{PATH}/{VERIFICATION_ID}"
REPORT_KEY = f"databases/shop/backups/{NEW_ID}.verification-{VERIFICATION_ID}.json"


def following(api: FakeApi, *states: dict[str, Any]) -> None:
    """POST answers a scheduled drill; each GET of it answers the next state."""
    api.routes[f"POST {PATH}"] = (202, verification("scheduled"))
    answers = iter(states)
    api.routes[f"GET {ONE}"] = lambda _: (200, next(answers))


def posted(api: FakeApi) -> list[Any]:
    return [body for route, _, body in api.calls if route == f"POST {PATH}"]


# -- backups-verify -------------------------------------------------------------------------------


def test_backups_verify_follows_the_drill_and_prints_every_check(api: FakeApi) -> None:
    following(api, verification("running"), verification("passed"))

    result = run("backups-verify")

    assert result.exit_code == 0, result.output
    assert posted(api) == [{}]  # the API's default: the newest done backup
    assert result.stdout.splitlines() == [
        f"-----> Verifying backup {NEW_ID} of shop in a throwaway server",
        "       \N{CHECK MARK} restore: 12 entries restored",
        "       \N{CHECK MARK} objects: every object of the archive is there",
        "       \N{CHECK MARK} amcheck: 4 tables and 6 indexes clean",
        "       \N{CHECK MARK} row_counts: 4 tables, 1,203 rows",
        "       Restored 4 tables, 1,203 rows in 3.2 s on fargate, PostgreSQL 18.1 (source 18.1)",
        f"       Report: {REPORT_KEY}",
        "-----> Verification passed",
    ]


def test_backups_verify_of_latest_names_the_backup_the_api_chose(api: FakeApi) -> None:
    scheduled = verification("scheduled", backup_id=None)
    api.routes[f"POST {PATH}"] = (202, scheduled)
    api.routes[f"GET {ONE}"] = (200, verification("passed"))

    result = run("backups-verify")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "-----> Verifying backup latest of shop in a throwaway server"
    )
    assert f"       Backup {NEW_ID}" in result.stdout.splitlines()


@pytest.mark.parametrize(
    ("args", "body"),
    [
        (["--backup", NEW_ID.lower()], {"backup_id": NEW_ID}),
        (["--backup", "LATEST"], {"backup_id": "latest"}),
        (["--time", "2026-11-25T06:30:00+01:00"], {"target_time": "2026-11-25T05:30:00Z"}),
        (["--time", "latest"], {"target_time": "latest"}),
    ],
)
def test_backups_verify_sends_what_to_drill(
    api: FakeApi, args: list[str], body: dict[str, str]
) -> None:
    following(api, verification("passed"))

    result = run("backups-verify", *args)

    assert result.exit_code == 0, result.output
    assert posted(api) == [body]


def test_a_point_in_time_drill_is_said_as_such(api: FakeApi) -> None:
    drill = {"kind": "point_in_time", "target_time": "2026-11-25T05:30:00Z"}
    api.routes[f"POST {PATH}"] = (202, verification("scheduled", **drill))
    api.routes[f"GET {ONE}"] = (200, verification("passed", **drill))

    result = run("backups-verify", "--time", "2026-11-25T05:30:00Z")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "-----> Verifying point in time 2026-11-25 05:30:00 UTC of shop in a throwaway server"
    )


def test_a_drill_of_the_latest_point_in_time_says_so(api: FakeApi) -> None:
    drill = {"kind": "point_in_time", "target_time": None}
    api.routes[f"POST {PATH}"] = (202, verification("scheduled", **drill))
    api.routes[f"GET {ONE}"] = (200, verification("passed", **drill))

    result = run("backups-verify", "--time", "latest")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "-----> Verifying the latest point in time of shop in a throwaway server"
    )


def test_a_failed_check_fails_the_command_with_its_name(api: FakeApi) -> None:
    checks = [
        *VERIFICATION_CHECKS,
        {"name": "smoke 1", "passed": False, "detail": "SELECT count(*) FROM orders: 0 rows"},
    ]
    following(api, verification("failed", checks=checks))

    result = run("backups-verify")

    assert result.exit_code == 1
    assert "       \N{BALLOT X} smoke 1: SELECT count(*) FROM orders: 0 rows" in result.stdout
    assert "       \N{CHECK MARK} restore: 12 entries restored" in result.stdout
    assert "Verification passed" not in result.stdout
    assert result.stderr.splitlines()[-1] == " !     Verification failed: check failed: smoke 1"


def test_a_drill_that_could_not_run_fails_with_the_recorded_error(api: FakeApi) -> None:
    failed = verification(
        "failed", checks=[], tables=None, rows=None, restore_seconds=None, report_key=None
    )
    following(api, failed | {"error": "no server binaries for PostgreSQL 14"})

    result = run("backups-verify")

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"-----> Verifying backup {NEW_ID} of shop in a throwaway server"
    ]
    assert result.stderr.splitlines()[-1] == (
        " !     Verification failed: no server binaries for PostgreSQL 14"
    )


def test_backups_verify_no_wait_returns_once_scheduled(api: FakeApi) -> None:
    api.routes[f"POST {PATH}"] = (202, verification("scheduled"))

    result = run("backups-verify", "--no-wait")

    assert result.exit_code == 0, result.output
    assert f"GET {ONE}" not in api.routes_called()
    assert result.stdout.splitlines()[-1] == (
        f"       Follow it with `pgbackups verifications-info -d shop --verification "
        f"{VERIFICATION_ID}`."
    )


def test_ctrl_c_stops_following_and_says_the_drill_goes_on(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.routes[f"POST {PATH}"] = (202, verification("scheduled"))
    api.routes[f"GET {ONE}"] = (200, verification("running"))

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pgbackups_cli.follow.time.sleep", interrupted)

    result = run("backups-verify")

    assert result.exit_code == 130
    assert "Stopped following the drill; the drill goes on." in result.stderr
    assert f"--verification {VERIFICATION_ID}" in result.stderr
    assert [route for route, _, _ in api.calls if route.startswith("DELETE")] == []


def test_the_api_refusing_a_drill_is_said_in_its_words(api: FakeApi) -> None:
    api.routes[f"POST {PATH}"] = error(
        422, "not_supported", "drills run on the Fargate runner: this stack has none"
    )

    result = run("backups-verify")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        " !     drills run on the Fargate runner: this stack has none"
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--backup", NEW_ID, "--time", "2026-11-25T05:30:00Z"], "give --backup or --time"),
        (["--time", "yesterday"], "'yesterday' is not an RFC 3339 time"),
        (["--time", "2026-11-25T05:30:00"], "give the time zone"),
        (["--backup", "42"], "'42' is not a backup id"),
    ],
)
def test_backups_verify_refuses_bad_input_before_any_request(
    api: FakeApi, args: list[str], says: str
) -> None:
    result = run("backups-verify", *args)

    assert result.exit_code == 2
    assert says in result.stderr
    assert api.calls == []


# -- verifications ----------------------------------------------------------------------------------


def test_verifications_lists_the_drills(api: FakeApi) -> None:
    failed = verification(
        "failed",
        id="01KB40000000000000000000VE",
        checks=[*VERIFICATION_CHECKS[:3], {"name": "row_counts", "passed": False, "detail": ""}],
    )
    page = {"verifications": [verification("passed"), failed], "next_cursor": None}
    api.routes[f"GET {PATH}"] = (200, page)

    result = run("verifications")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "=== Verifications of shop"
    assert lines[1].split() == ["ID", "CREATED", "AT", "RESTORED", "STATUS", "RESTORE", "TIME", "CHECKS"]  # fmt: skip
    assert lines[2].split() == [
        VERIFICATION_ID, "2026-11-25", "05:00:00", "UTC", "backup", NEW_ID, "passed",
        "3.2", "s", "4/4", "passed",
    ]  # fmt: skip
    assert lines[3].split()[0] == "01KB40000000000000000000VE"
    assert lines[3].split()[-5:] == ["failed", "3.2", "s", "3/4", "passed"]
    assert api.calls[-1][1] == {"limit": "20"}


def test_verifications_without_any_says_how_to_run_one(api: FakeApi) -> None:
    api.routes[f"GET {PATH}"] = (200, {"verifications": [], "next_cursor": None})

    result = run("verifications")

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "-----> No verifications of shop yet.",
        "       Run one with `pgbackups backups-verify -d shop`.",
    ]


def test_verifications_json_is_the_api_page(api: FakeApi) -> None:
    page = {"verifications": [verification("passed")], "next_cursor": None}
    api.routes[f"GET {PATH}"] = (200, page)

    result = run("verifications", "--json", "--limit", "5")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == page
    assert api.calls[-1][1] == {"limit": "5"}


# -- verifications-info -----------------------------------------------------------------------------


def test_verifications_info_shows_every_field_and_check_of_the_newest(api: FakeApi) -> None:
    page = {"verifications": [verification("passed")], "next_cursor": None}
    api.routes[f"GET {PATH}"] = (200, page)

    result = run("verifications-info")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"=== Verification {VERIFICATION_ID}",
        f"Restored:       backup {NEW_ID}",
        "Status:         passed",
        "Runner:         fargate",
        "Created at:     2026-11-25 05:00:00 UTC",
        "Started at:     2026-11-25 05:00:02 UTC",
        "Finished at:    2026-11-25 05:00:40 UTC",
        "Restore time:   3.2 s",
        "Phases:         contents 0.3 s · start 0.9 s · restore 3.2 s · checks 0.4 s · "
        "stop 0.2 s (total 5.1 s)",
        "Server version: 18.1",
        "Source version: 18.1",
        "Tables:         4 tables, 1,203 rows",
        "Checks:         \N{CHECK MARK} restore: 12 entries restored",
        "                \N{CHECK MARK} objects: every object of the archive is there",
        "                \N{CHECK MARK} amcheck: 4 tables and 6 indexes clean",
        "                \N{CHECK MARK} row_counts: 4 tables, 1,203 rows",
        f"Report:         {REPORT_KEY}",
        f"Report SHA-256: {'ab' * 32}",
    ]
    assert api.calls[-1][1] == {"limit": "1"}


def test_verifications_info_of_one_failed_point_in_time_drill(api: FakeApi) -> None:
    drill = verification(
        "failed",
        kind="point_in_time",
        target_time="2026-11-25T04:12:09Z",
        error="WAL file 000000010000000000000007 is missing from the bucket",
        checks=[{"name": "restore", "passed": False, "detail": "recovery did not start"}],
        phases={"restore": 12.04, "total": 12.04},
    )
    api.routes[f"GET {ONE}"] = (200, drill)

    result = run("verifications-info", "--verification", VERIFICATION_ID.lower())

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "Restored:       point in time 2026-11-25 04:12:09 UTC" in lines
    assert f"Base backup:    {NEW_ID}" in lines
    assert "Checks:         \N{BALLOT X} restore: recovery did not start" in lines
    assert "Phases:         restore 12.0 s (total 12.0 s)" in lines
    assert lines[-1] == (
        "Error:          WAL file 000000010000000000000007 is missing from the bucket"
    )


def test_verifications_info_report_url_prints_the_link_only(api: FakeApi) -> None:
    api.routes[f"GET {ONE}"] = (200, verification("passed"))
    link = "https://storage.example.com/bucket/report.json?X-Amz-Signature=abc"
    api.routes[f"GET {ONE}/report"] = (200, {"url": link})

    result = run("verifications-info", "--verification", VERIFICATION_ID, "--report-url")

    assert result.exit_code == 0, result.output
    assert result.stdout == link + "\n"


def test_verifications_info_report_url_of_a_running_drill_says_there_is_none(
    api: FakeApi,
) -> None:
    api.routes[f"GET {ONE}"] = (200, verification("running"))

    result = run("verifications-info", "--verification", VERIFICATION_ID, "--report-url")

    assert result.exit_code == 1
    assert f"GET {ONE}/report" not in api.routes_called()
    assert "has no report (running: a report is written when a drill ends)" in result.stderr


def test_verifications_info_without_any_drill_fails_clearly(api: FakeApi) -> None:
    api.routes[f"GET {PATH}"] = (200, {"verifications": [], "next_cursor": None})

    result = run("verifications-info")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == " !     No verifications of shop yet."


def test_verifications_info_refuses_a_bad_id_before_any_request(api: FakeApi) -> None:
    result = run("verifications-info", "--verification", "../../backups")

    assert result.exit_code == 2
    assert "is not a verification id" in result.stderr
    assert api.calls == []


def test_an_unknown_verification_is_said_in_the_api_words(api: FakeApi) -> None:
    api.routes[f"GET {ONE}"] = error(404, "not_found", f"no verification {VERIFICATION_ID}")

    result = run("verifications-info", "--verification", VERIFICATION_ID)

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == f" !     no verification {VERIFICATION_ID}"


# -- verifications-config ---------------------------------------------------------------------------

SETTINGS: dict[str, Any] = {"enabled": True, "every_days": 7, "hour": None, "smoke_queries": []}
STATUS = {
    "last_id": VERIFICATION_ID,
    "last_status": "passed",
    "last_at": "2026-11-25T05:00:40Z",
    "next_at": "2026-12-02T05:00:00Z",
    "restore_seconds": 3.24,
}


def shop(**verification_settings: Any) -> dict[str, Any]:
    return database(
        "shop", verification=SETTINGS | verification_settings, verification_status=STATUS
    )


def patched(api: FakeApi) -> list[Any]:
    return [body for route, _, body in api.calls if route == "PATCH /v1/databases/shop"]


@pytest.fixture
def configurable(api: FakeApi) -> FakeApi:
    """shop with drills enabled; PATCH changes what it is given, as the API does."""
    stored = {"verification": shop()["verification"]}
    api.routes["GET /v1/databases/shop"] = lambda _: (200, shop(**stored["verification"]))

    def patch(body: Any) -> tuple[int, Any]:
        stored["verification"] = stored["verification"] | body["verification"]
        return 200, shop(**stored["verification"])

    api.routes["PATCH /v1/databases/shop"] = patch
    return api


def test_verifications_config_shows_the_settings_and_the_last_drill(configurable: FakeApi) -> None:
    result = run("verifications-config")

    assert result.exit_code == 0, result.output
    assert patched(configurable) == []
    assert result.stdout.splitlines() == [
        "-----> Restore drills of shop are done every 7 days, 12 hours from the backups' hour",
        "       Last drill: passed at 2026-11-25 05:00:40 UTC, restore time 3.2 s",
        "       Next drill: 2026-12-02 05:00:00 UTC",
    ]


def test_verifications_config_sends_only_what_is_given(configurable: FakeApi) -> None:
    result = run(
        "verifications-config", "--every-days", "3", "--hour", "4",
        "--smoke-query", "SELECT count(*) FROM orders", "--expect", "value >= 1",
        "--smoke-query", "SELECT 1 FROM customers LIMIT 1", "--expect", "rows = 1",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert patched(configurable) == [
        {
            "verification": {
                "every_days": 3,
                "hour": 4,
                "smoke_queries": [
                    {"sql": "SELECT count(*) FROM orders", "expect": "value >= 1"},
                    {"sql": "SELECT 1 FROM customers LIMIT 1", "expect": "rows = 1"},
                ],
            }
        }
    ]
    assert result.stdout.splitlines()[:4] == [
        "-----> Restore drills of shop will be done every 3 days at 4:00 Europe/Paris",
        "       Smoke queries (2):",
        "       1. SELECT count(*) FROM orders  (expect value >= 1)",
        "       2. SELECT 1 FROM customers LIMIT 1  (expect rows = 1)",
    ]
    shown = run("verifications-config")
    assert shown.stdout.splitlines()[0] == (
        "-----> Restore drills of shop are done every 3 days at 4:00 Europe/Paris"
    )


def test_verifications_config_hour_auto_and_no_smoke_queries(configurable: FakeApi) -> None:
    run("verifications-config", "--hour", "5", "--smoke-query", "SELECT 1", "--expect", "rows = 1")

    result = run("verifications-config", "--hour", "auto", "--no-smoke-queries", "--json")

    assert result.exit_code == 0, result.output
    assert patched(configurable)[-1] == {"verification": {"hour": None, "smoke_queries": []}}
    assert json.loads(result.stdout) == SETTINGS


def test_verifications_config_enable(configurable: FakeApi) -> None:
    run("verifications-config", "--disable", "--yes")

    result = run("verifications-config", "--enable")

    assert result.exit_code == 0, result.output
    assert patched(configurable)[-1] == {"verification": {"enabled": True}}
    assert result.stdout.splitlines()[0] == (
        "-----> Restore drills of shop will be done every 7 days, 12 hours from the backups' hour"
    )


def test_verifications_config_disable_asks_first(configurable: FakeApi) -> None:
    refused = run("verifications-config", "--disable", input="n\n")
    assert refused.exit_code == 1
    assert "Cancelled: nothing was changed" in refused.stderr
    assert patched(configurable) == []

    accepted = run("verifications-config", "--disable", "--yes")
    assert accepted.exit_code == 0, accepted.output
    assert patched(configurable) == [{"verification": {"enabled": False}}]
    assert accepted.stdout.splitlines() == [
        "-----> Restore drills of shop are disabled",
        "       Last drill: passed at 2026-11-25 05:00:40 UTC, restore time 3.2 s",
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--hour", "24"], "'24' is not an hour: give 0 to 23, or auto"),
        (["--every-days", "0"], "--every-days"),
        (["--every-days", "366"], "--every-days"),
        (["--smoke-query", "SELECT 1"], "each --smoke-query needs its --expect"),
        (["--expect", "rows = 1"], "each --smoke-query needs its --expect"),
        (
            ["--smoke-query", "SELECT 1", "--expect", "rows = 1", "--no-smoke-queries"],
            "--smoke-query and --no-smoke-queries cannot be used together",
        ),
        (
            ["--smoke-query", "SELECT 1", "--expect", "rows ~ 1"],
            "smoke query 1: expect: 'rows ~ 1' is not an expectation",
        ),
        (["--smoke-query", " ", "--expect", "rows = 1"], "smoke query 1: sql: the query is empty"),
        (
            [
                arg
                for _ in range(11)
                for arg in ("--smoke-query", "SELECT 1", "--expect", "rows = 1")
            ],
            "11 smoke queries: a database has at most 10",
        ),
    ],
)
def test_verifications_config_refuses_bad_input_before_any_request(
    api: FakeApi, args: list[str], says: str
) -> None:
    result = run("verifications-config", *args)

    assert result.exit_code == 2
    assert says in result.stderr
    assert api.calls == []


def test_words_for_seconds() -> None:
    assert verifications_module.seconds_words(None) == "-"
    assert verifications_module.seconds_words(0.04) == "0.0 s"
    assert verifications_module.seconds_words(59.94) == "59.9 s"
    assert verifications_module.seconds_words(247) == "4 min 7 s"


def test_status_names_the_drill_and_restore_reasons_in_words(api: FakeApi) -> None:
    reasons = [
        {"code": code, "severity": "failing", "message": "Why.", "since": "2026-11-25T05:00:40Z"}
        for code in ("restore_failed", "verification_failed", "verification_overdue")
    ]
    health = {"status": "failing", "reasons": reasons, "since": "2026-11-25T05:00:40Z"}
    api.routes["GET /v1/databases"] = (200, {"databases": [database("shop", health=health)]})

    result = run("status")

    assert result.exit_code == 1
    assert [line for line in result.stdout.splitlines() if line.endswith("UTC:")] == [
        "restore failed since 2026-11-25 05:00 UTC:",
        "restore drill failed since 2026-11-25 05:00 UTC:",
        "restore drill overdue since 2026-11-25 05:00 UTC:",
    ]


def test_a_restore_that_failed_shows_its_time_without_counts(api: FakeApi) -> None:
    checks = [{"name": "restore", "passed": False, "detail": "pg_restore: error: bad archive"}]
    failed = verification("failed", checks=checks, tables=None, rows=None, restore_seconds=1.5)
    following(api, failed | {"error": "restore: pg_restore: error: bad archive"})

    result = run("backups-verify")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[1:3] == [
        "       \N{BALLOT X} restore: pg_restore: error: bad archive",
        "       Restored in 1.5 s on fargate, PostgreSQL 18.1 (source 18.1)",
    ]
    assert result.stderr.splitlines()[-1] == (
        " !     Verification failed: restore: pg_restore: error: bad archive"
    )
