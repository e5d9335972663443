"""`pitr-enable`, `pitr-disable` and `pitr-window`: continuous backups on, off, and what
they can restore.

The window is shown as the API gives it: every recoverable range (a break leaves a gap
between two), the status with its reason and since when, the lag in words, the last
archived WAL file, and the breaks of the kept history. The dashboard says the same in
the same words. An older API without the ranges or breaks is shown with what it sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import click

from pgbackups_cli.output import (
    human_time,
    is_interactive,
    note,
    print_fields,
    print_json,
    print_table,
    say,
    stderr_console,
)
from pgbackups_cli.secret_input import SCHEMES, url_option
from pgbackups_cli.session import (
    api_options,
    confirm,
    database_option,
    json_option,
    session,
    yes_option,
)

REPLICATION_URL_ENV = "PGBACKUPS_REPLICATION_URL"


# -- words shared with the dashboard (pgbackups/api/static/app.js) ------------------------------


def duration_words(seconds: float) -> str:
    """`13 s`, `4 min 7 s`, `2 h 5 min`, `3 d 4 h`: whole units, the two largest."""
    total = max(round(seconds), 0)
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def lag_words(seconds: float | None) -> str:
    """How far behind the server the stored WAL is: `13 s behind`; `-` if unknown."""
    return "-" if seconds is None else f"{duration_words(seconds)} behind"


def gap_words(brk: Mapping[str, Any]) -> str:
    """How long a break left nothing recoverable: `4 min 7 s`, or `ongoing`."""
    if brk.get("recovered_at") is None or brk.get("gap_seconds") is None:
        return "ongoing"
    return duration_words(float(brk["gap_seconds"]))


def status_words(pitr: Mapping[str, Any]) -> str:
    """`ok`, `broken since … UTC: <reason>`, `disabled`."""
    status = str(pitr.get("status") or "-")
    if status != "broken":
        return status
    since = pitr.get("broken_since")
    text = f"broken since {human_time(since)}" if since else "broken"
    reason = pitr.get("broken_reason")
    return f"{text}: {reason}" if reason else text


def recoverable_ranges(pitr: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The API's ranges, oldest first; from an older API, its one earliest-to-latest window."""
    ranges = pitr.get("recoverable_ranges")
    if isinstance(ranges, list):
        return [dict(r) for r in ranges]
    earliest, latest = pitr.get("earliest_recoverable_at"), pitr.get("latest_recoverable_at")
    if earliest and latest:
        return [{"from": earliest, "to": latest, "base_backup_id": None}]
    return []


def range_words(ranges: Iterable[Mapping[str, Any]]) -> str:
    """One `from … to …` line per range; `none yet` without any."""
    lines = [f"{human_time(r.get('from'))} to {human_time(r.get('to'))}" for r in ranges]
    return "\n".join(lines) or "none yet"


def archived_words(pitr: Mapping[str, Any]) -> str:
    """`000000010000000000000003 at 2026-12-06 03:10:00 UTC`."""
    name, at = pitr.get("last_archived_wal"), pitr.get("last_archived_at")
    if name and at:
        return f"{name} at {human_time(at)}"
    return str(name) if name else human_time(at)


def settings_words(pitr: Mapping[str, Any]) -> str:
    every, window = pitr.get("base_backup_every_days"), pitr.get("window_days")
    return f"a base backup every {_days(every)}, history kept {_days(window)}"


def _days(count: Any) -> str:
    return "1 day" if count == 1 else f"{count} days"


# -- pitr-window --------------------------------------------------------------------------------


def print_window(name: str, pitr: Mapping[str, Any]) -> None:
    ranges = recoverable_ranges(pitr)
    if not pitr.get("enabled"):
        kept = pitr.get("history_kept_until")
        if kept and ranges:
            say(
                f"Continuous backups are disabled for {name}; history kept until {human_time(kept)}."
            )
            print_fields(f"Recoverable ranges of {name}", [("Recoverable", range_words(ranges))])
        else:
            say(f"Continuous backups are disabled for {name}.")
            note(f"Enable them with `pgbackups pitr-enable -d {name}`.")
        return
    print_fields(
        f"Continuous backups of {name}",
        [
            ("Status", status_words(pitr)),
            ("Recoverable", range_words(ranges)),
            ("Lag", lag_words(pitr.get("lag_seconds"))),
            ("Last archived WAL", archived_words(pitr)),
            ("Settings", settings_words(pitr)),
        ],
    )
    breaks = pitr.get("breaks")
    if breaks:
        print_breaks(breaks)


def print_breaks(breaks: Iterable[Mapping[str, Any]]) -> None:
    from rich import box
    from rich.table import Table

    table = Table(box=box.MINIMAL, show_edge=False, pad_edge=False, header_style="bold")
    for column in ("AT", "REASON", "GAP", "RECOVERABLE AGAIN AT"):
        table.add_column(column, overflow="fold")
    for brk in breaks:
        table.add_row(
            human_time(brk.get("at")),
            str(brk.get("reason") or "-"),
            gap_words(brk),
            human_time(brk.get("recovered_at")),
        )
    click.echo("=== Breaks")
    print_table(table)


@click.command("pitr-window")
@database_option
@api_options
@json_option
def pitr_window(as_json: bool) -> None:
    """Show what continuous backups can restore: every range, the status and the breaks."""
    state = session()
    pitr = state.client().get(state.database_path("pitr"))
    if as_json:
        print_json(pitr)
        return
    print_window(state.database_name(), pitr)


# -- pitr-enable, pitr-disable ---------------------------------------------------------------------


def _ask_replication_url(name: str) -> str | None:
    """On a terminal, the replication URL with hidden input; empty: the database's own."""
    value = click.prompt(
        f"Replication URL of {name} (postgresql://user:password@host:5432/db, hidden; "
        "empty: the database's own URL)",
        default="",
        show_default=False,
        hide_input=True,
    )
    url = str(value).strip()
    if not url:
        return None
    if not url.startswith(SCHEMES):
        raise click.UsageError("--replication-url: it must start with postgres:// or postgresql://")
    return url


@click.command("pitr-enable")
@url_option(
    "--replication-url",
    envvar=REPLICATION_URL_ENV,
    help_text="A role with the REPLICATION attribute (default: the database's own URL).",
)
@click.option(
    "--base-backup-every-days", type=click.IntRange(1, 7), metavar="N",
    help="Days between base backups (1-7; default 7, or as set).",
)  # fmt: skip
@click.option(
    "--window-days", type=click.IntRange(1, 30), metavar="N",
    help="Days of history kept (1-30; default 7, or as set).",
)  # fmt: skip
@database_option
@api_options
def pitr_enable(
    replication_url: str | None, base_backup_every_days: int | None, window_days: int | None
) -> None:
    """Turn continuous backups on, or change them; the server is checked first.

    Give the replication URL without putting its password on the command line:
    `--replication-url - < repl.url`, PGBACKUPS_REPLICATION_URL, or nothing, to be
    asked for it on a terminal (empty: the database's own URL).
    """
    state = session()
    name, client, path = state.database_name(), state.client(), state.database_path("pitr")
    current = client.get(path)
    was_enabled = bool(current.get("enabled"))
    if replication_url is None and not was_enabled and is_interactive():
        replication_url = _ask_replication_url(name)
    body: dict[str, Any] = {
        "enabled": True,
        "base_backup_every_days": base_backup_every_days or current.get("base_backup_every_days"),
        "window_days": window_days or current.get("window_days"),
    }
    if replication_url is not None:
        body["replication_url"] = replication_url
    body = {key: value for key, value in body.items() if value is not None}
    with stderr_console().status(f"Checking the server of {name} and enabling…"):
        answer = client.put(path, body)
    if not was_enabled:
        say(f"Continuous backups enabled for {name}")
    elif _same_settings(current, answer) and replication_url is None:
        say(f"Continuous backups of {name} unchanged")
    else:
        say(f"Continuous backups of {name} changed")
    if replication_url is not None:
        note("Replication through the URL given")
    elif not was_enabled:
        note("Replication through the database's own URL")
    note(settings_words(answer).capitalize())
    if not was_enabled:
        note(f"The first base backup is on its way: `pgbackups pitr-window -d {name}` shows it.")


def _same_settings(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    keys = ("base_backup_every_days", "window_days")
    return all(before.get(k) == after.get(k) for k in keys)


@click.command("pitr-disable")
@database_option
@api_options
@yes_option
def pitr_disable(yes: bool) -> None:
    """Turn continuous backups off; the history kept expires with the window."""
    state = session()
    name, client, path = state.database_name(), state.client(), state.database_path("pitr")
    current = client.get(path)
    if not current.get("enabled"):
        say(f"Continuous backups are already disabled for {name}.")
        return
    window = _days(current.get("window_days"))
    if not yes:
        confirm(
            f"Disable continuous backups of {name}? No more WAL is captured and its "
            f"replication slot is dropped; the history kept stays restorable until it "
            f"expires with the window ({window})."
        )
    body = {
        "enabled": False,
        "base_backup_every_days": current.get("base_backup_every_days"),
        "window_days": current.get("window_days"),
    }
    answer = client.put(path, {k: v for k, v in body.items() if v is not None})
    say(f"Continuous backups disabled for {name}")
    kept = answer.get("history_kept_until")
    if kept:
        note(
            f"History kept until {human_time(kept)}: `pgbackups pitr-restore` restores "
            "from it until then."
        )
    elif recoverable_ranges(answer):
        note(f"The history kept expires with the window ({window}).")
    else:
        note("No history was kept.")


COMMANDS = (pitr_enable, pitr_disable, pitr_window)
