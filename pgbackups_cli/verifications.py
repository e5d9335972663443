"""`backups-verify`, `verifications`, `verifications-info`, `verifications-config`: restore
drills run by the stack (`POST /v1/databases/{db}/verifications`), followed from here.

A drill restores a backup (or a point in time) into a throwaway server of the source's
major and checks it; the CLI shows each check as the API records it, in its words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from pgbackups.domain.names import BACKUP_ID
from pgbackups_cli.follow import follow_run
from pgbackups_cli.output import (
    Failure,
    human_time,
    note,
    print_fields,
    print_json,
    print_table,
    say,
)
from pgbackups_cli.pitr import parse_target_time
from pgbackups_cli.pitr_settings import duration_words
from pgbackups_cli.session import (
    api_options,
    backup_option,
    confirm,
    database_option,
    json_option,
    session,
    silent_option,
    yes_option,
)

PASSED, FAILED = "\N{CHECK MARK}", "\N{BALLOT X}"
AUTO = "auto"


# -- words ---------------------------------------------------------------------------------------


def seconds_words(seconds: float | None) -> str:
    """`3.2 s` under a minute, `4 min 7 s` above; `-` if unknown."""
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 60 else duration_words(seconds)


# A drill's phases in the order they run (the API's `phases`; a map, so in no order).
PHASE_ORDER = ("contents", "start", "restore", "checks", "stop")


def phases_words(phases: Mapping[str, float] | None) -> str:
    """`start 0.9 s · restore 3.2 s · checks 0.4 s · stop 0.2 s (total 4.7 s)`; `-` if none."""
    if not phases:
        return "-"
    named = [name for name in PHASE_ORDER if name in phases]
    named += sorted(name for name in phases if name not in (*PHASE_ORDER, "total"))
    words = " · ".join(f"{name} {seconds_words(phases[name])}" for name in named)
    if "total" in phases:
        words += f" (total {seconds_words(phases['total'])})"
    return words


def check_line(check: Mapping[str, Any]) -> str:
    """`✓ restore: 12 entries restored`."""
    mark = PASSED if check.get("passed") else FAILED
    detail = check.get("detail")
    return f"{mark} {check['name']}: {detail}" if detail else f"{mark} {check['name']}"


def counts_words(verification: Mapping[str, Any]) -> str:
    """`12 tables, 45,600 rows`."""
    tables, rows = verification.get("tables"), verification.get("rows")
    if tables is None:
        return "-"
    table_words = "1 table" if tables == 1 else f"{tables:,} tables"
    if rows is None:
        return table_words
    return f"{table_words}, {'1 row' if rows == 1 else f'{rows:,} rows'}"


def what_words(verification: Mapping[str, Any]) -> str:
    """What the drill restores: `backup 01KB…`, `point in time 2026-… UTC`, or `the latest
    point in time` (a drill of `latest` records no time)."""
    if verification.get("kind") == "point_in_time":
        moment = verification.get("target_time")
        return f"point in time {human_time(moment)}" if moment else "the latest point in time"
    return f"backup {verification.get('backup_id') or 'latest'}"


def failure_reason(verification: Mapping[str, Any]) -> str:
    """The recorded error, else the names of the checks that failed."""
    if verification.get("error"):
        return str(verification["error"])
    failed = [c["name"] for c in verification.get("checks") or [] if not c.get("passed")]
    if failed:
        return f"{'check' if len(failed) == 1 else 'checks'} failed: {', '.join(failed)}"
    return "no reason was recorded"


def _info_hint(name: str, verification_id: str) -> str:
    return f"`pgbackups verifications-info -d {name} --verification {verification_id}`"


# -- backups-verify ------------------------------------------------------------------------------


def _target_time(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_target_time(value)
    except click.BadParameter as error:
        raise click.BadParameter(error.message, ctx=ctx, param=param) from None


@click.command("backups-verify")
@backup_option("The backup to drill: its id, or `latest` (the default: the newest done one).")
@click.option(
    "--time",
    "target_time",
    metavar="TIME",
    callback=_target_time,
    help="Or a point in time (RFC 3339 with its offset, or `latest`) of the continuous backups.",
)
@click.option("--no-wait", is_flag=True, help="Return once the drill is scheduled.")
@silent_option
@database_option
@api_options
def backups_verify(
    backup_ref: str | None, target_time: str | None, no_wait: bool, silent: bool
) -> None:
    """Drill a backup: restore it and check it.

    The stack restores the backup (or the point in time) into a throwaway server of
    the source's major, checks the objects of the archive, pg_amcheck, the row counts
    and the smoke queries, and records the restore time and a JSON report. Exits 0
    when every check passed, 1 when one failed; Ctrl-C stops following, not the drill.
    """
    if backup_ref is not None and target_time is not None:
        raise click.UsageError("give --backup or --time, not both")
    state = session()
    name = state.database_name()
    body: dict[str, Any] = {}
    if backup_ref is not None:
        body["backup_id"] = backup_ref
    if target_time is not None:
        body["target_time"] = target_time
    verification = state.client().post(state.database_path("verifications"), body)
    verification_id, named = verification["id"], verification.get("backup_id")
    say(f"Verifying {what_words(verification)} of {name} in a throwaway server")
    if no_wait:
        note(f"Follow it with {_info_hint(name, verification_id)}.")
        return
    verification = follow_run(
        state.client(), state.database_path("verifications", verification_id), "drill",
        spinner=f"Verifying: {verification['status']}",
        status=lambda current, seconds: f"Verifying: {current['status']}, {int(seconds)}s",
        check=_info_hint(name, verification_id), quiet=silent,
    )  # fmt: skip
    if verification.get("kind") == "backup" and verification.get("backup_id") != named:
        note(f"Backup {verification['backup_id']}")  # chosen by the stack when it started
    for check in verification.get("checks") or []:
        note(check_line(check))
    counted = f"{counts_words(verification)} " if verification.get("tables") is not None else ""
    if verification.get("restore_seconds") is not None:
        seconds = seconds_words(verification["restore_seconds"])
        note(f"Restored {counted}in {seconds}{_where(verification)}")
    elif counted:
        note(f"Restored {counted.strip()}")
    if verification.get("report_key"):
        note(f"Report: {verification['report_key']}")
    if verification["status"] != "passed":
        raise Failure(f"Verification failed: {failure_reason(verification)}")
    say("Verification passed")


def _where(verification: Mapping[str, Any]) -> str:
    """` on fargate, PostgreSQL 18.1 (source 18.1)`."""
    parts = []
    if verification.get("runner"):
        parts.append(f" on {verification['runner']}")
    if verification.get("server_version"):
        source = verification.get("source_version")
        parts.append(
            f", PostgreSQL {verification['server_version']}"
            + (f" (source {source})" if source else "")
        )
    return "".join(parts)


# -- verifications, verifications-info -----------------------------------------------------------


@click.command("verifications")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@database_option
@api_options
@json_option
def verifications(limit: int, as_json: bool) -> None:
    """List the drills, newest first."""
    state = session()
    page = state.client().get(state.database_path("verifications"), {"limit": limit})
    if as_json:
        print_json(page)
        return
    found = page["verifications"]
    if not found:
        say(f"No verifications of {state.database_name()} yet.")
        note(f"Run one with `pgbackups backups-verify -d {state.database_name()}`.")
        return
    from rich.table import Table

    table = Table("ID", "CREATED AT", "RESTORED", "STATUS", "RESTORE TIME", "CHECKS", box=None)
    for verification in found:
        checks = verification.get("checks") or []
        passed = sum(1 for check in checks if check.get("passed"))
        table.add_row(
            verification["id"],
            human_time(verification.get("created_at")),
            what_words(verification),
            verification["status"],
            seconds_words(verification.get("restore_seconds")),
            f"{passed}/{len(checks)} passed" if checks else "-",
        )
    click.echo(f"=== Verifications of {state.database_name()}")
    print_table(table)


def _verification_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not BACKUP_ID.match(value.upper()):
        raise click.BadParameter(
            f"{value!r} is not a verification id (26 letters and digits, as "
            "`pgbackups verifications` lists them)",
            ctx=ctx,
            param=param,
        )
    return value.upper()


@click.command("verifications-info")
@click.option(
    "--verification",
    "verification_id",
    metavar="ID",
    callback=_verification_id,
    help="Default: the newest drill.",
)
@click.option(
    "--report-url",
    is_flag=True,
    help="Print only a link to download the drill's JSON report (valid a few minutes).",
)
@database_option
@api_options
@json_option
def verifications_info(verification_id: str | None, report_url: bool, as_json: bool) -> None:
    """Show one drill: checks, restore time and phases, report."""
    state = session()
    client = state.client()
    if verification_id is None:
        page = client.get(state.database_path("verifications"), {"limit": 1})
        if not page["verifications"]:
            raise Failure(f"No verifications of {state.database_name()} yet.")
        verification = page["verifications"][0]
    else:
        verification = client.get(state.database_path("verifications", verification_id))
    if report_url:
        if not verification.get("report_key"):
            raise Failure(
                f"Verification {verification['id']} has no report "
                f"({verification['status']}: a report is written when a drill ends)."
            )
        path = state.database_path("verifications", verification["id"], "report")
        click.echo(client.get(path)["url"])
        return
    if as_json:
        print_json(verification)
        return
    fields = [
        ("Restored", what_words(verification)),
        ("Status", verification["status"]),
        ("Runner", verification.get("runner") or "-"),
        ("Created at", human_time(verification.get("created_at"))),
        ("Started at", human_time(verification.get("started_at"))),
        ("Finished at", human_time(verification.get("finished_at"))),
        ("Restore time", seconds_words(verification.get("restore_seconds"))),
        ("Phases", phases_words(verification.get("phases"))),
        ("Server version", verification.get("server_version") or "-"),
        ("Source version", verification.get("source_version") or "-"),
        ("Tables", counts_words(verification)),
        ("Checks", "\n".join(map(check_line, verification.get("checks") or [])) or "-"),
        ("Report", verification.get("report_key") or "-"),
        ("Report SHA-256", verification.get("report_sha256") or "-"),
    ]
    if verification.get("kind") == "point_in_time" and verification.get("backup_id"):
        fields.insert(1, ("Base backup", verification["backup_id"]))
    if verification.get("error"):
        fields.append(("Error", verification["error"]))
    print_fields(f"Verification {verification['id']}", fields)


# -- verifications-config ------------------------------------------------------------------------


class HourOrAuto(click.ParamType):
    """An hour of the day (0-23), or `auto`: an hour away from the backups'."""

    name = "hour"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == AUTO:
            return AUTO
        if text.isdigit() and 0 <= int(text) <= 23:
            return int(text)
        self.fail(f"{value!r} is not an hour: give 0 to 23, or auto", param, ctx)


def _smoke_queries(sqls: tuple[str, ...], expects: tuple[str, ...]) -> list[dict[str, str]]:
    """The `--smoke-query`/`--expect` pairs, checked as the API checks them."""
    if len(sqls) != len(expects):
        raise click.UsageError(
            f"each --smoke-query needs its --expect (given {len(sqls)} --smoke-query and "
            f'{len(expects)} --expect), e.g. --smoke-query "SELECT 1 FROM orders LIMIT 1" '
            '--expect "rows >= 1"'
        )
    # The domain's rules (imported on use: pydantic is slow to load for the other commands).
    from pgbackups.domain.errors import InvalidInput
    from pgbackups.domain.smoke import parse_smoke_queries

    given = [{"sql": sql, "expect": expect} for sql, expect in zip(sqls, expects, strict=True)]
    try:
        queries = parse_smoke_queries(given)
    except InvalidInput as error:
        raise click.UsageError(error.message) from None
    return [{"sql": query.sql, "expect": query.expect} for query in queries]


def settings_words(database: Mapping[str, Any]) -> str:
    """`every 7 days at 3:00 Europe/Paris` (the schedule's time zone), or by default
    `every 7 days, 12 hours from the backups' hour`."""
    settings = database.get("verification") or {}
    every = settings.get("every_days")
    days = "every day" if every == 1 else f"every {every} days"
    hour = settings.get("hour")
    zone = (database.get("schedule") or {}).get("timezone")
    if hour is None:
        return f"{days}, 12 hours from the backups' hour"
    return f"{days} at {hour}:00" + (f" {zone}" if zone else "")


def print_settings(database: Mapping[str, Any], *, changed: bool) -> None:
    name = database["name"]
    settings = database.get("verification") or {}
    if not settings.get("enabled"):
        say(f"Restore drills of {name} are disabled")
    else:
        verb = "will be done" if changed else "are done"
        say(f"Restore drills of {name} {verb} {settings_words(database)}")
    queries = settings.get("smoke_queries") or []
    if queries:
        note(f"Smoke queries ({len(queries)}):")
        for number, query in enumerate(queries, start=1):
            note(f"{number}. {query['sql']}  (expect {query['expect']})")
    status = database.get("verification_status") or {}
    if status.get("last_id"):
        note(
            f"Last drill: {status.get('last_status')} at {human_time(status.get('last_at'))}, "
            f"restore time {seconds_words(status.get('restore_seconds'))}"
        )
    if settings.get("enabled") and status.get("next_at"):
        note(f"Next drill: {human_time(status['next_at'])}")


@click.command("verifications-config")
@click.option("--enable/--disable", default=None, help="Run drills on a schedule, or stop them.")
@click.option(
    "--every-days", type=click.IntRange(1, 365), metavar="N", help="Days between drills (1-365; 7)."
)
@click.option(
    "--hour",
    type=HourOrAuto(),
    metavar="H",
    help="Hour of the drills (0-23, in the backups' time zone), or auto: 12 hours from "
    "the backups' hour (the default).",
)
@click.option(
    "--smoke-query",
    "sqls",
    multiple=True,
    metavar="SQL",
    help="A read-only query run on the restored database, with the --expect after it "
    "(repeat both, up to 10). Replaces the smoke queries set before.",
)
@click.option(
    "--expect",
    "expects",
    multiple=True,
    metavar="EXPECTATION",
    help='What the --smoke-query before it must give: "rows >= 1", "value = 42"… '
    "(rows or value, then = != >= <= > <).",
)
@click.option("--no-smoke-queries", is_flag=True, help="Remove the smoke queries.")
@yes_option
@database_option
@api_options
@json_option
def verifications_config(
    enable: bool | None,
    every_days: int | None,
    hour: int | str | None,
    sqls: tuple[str, ...],
    expects: tuple[str, ...],
    no_smoke_queries: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Show or change when drills run.

    Once enabled, drills run every 7 days (--every-days) 12 hours from the backups'
    hour (--hour); each also runs the smoke queries given here on the restored copy.
    """
    if no_smoke_queries and (sqls or expects):
        raise click.UsageError("--smoke-query and --no-smoke-queries cannot be used together")
    changes: dict[str, Any] = {}
    if sqls or expects:
        changes["smoke_queries"] = _smoke_queries(sqls, expects)
    if no_smoke_queries:
        changes["smoke_queries"] = []
    if enable is not None:
        changes["enabled"] = enable
    if every_days is not None:
        changes["every_days"] = every_days
    if hour is not None:
        changes["hour"] = None if hour == AUTO else hour
    state = session()
    client, path = state.client(), state.database_path()
    if changes:
        if enable is False and not yes:
            confirm(f"Stop the scheduled restore drills of {state.database_name()}?")
        # What is not given keeps its value (PATCH).
        database = client.request("PATCH", path, body={"verification": changes})
    else:
        database = client.get(path)
    if as_json:
        print_json(database.get("verification"))
        return
    print_settings(database, changed=bool(changes))


COMMANDS = [backups_verify, verifications, verifications_info, verifications_config]
