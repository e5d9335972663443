"""How the CLI speaks: the seed's `----->` and ` !     ` lines, tables, sizes, JSON.

Results go to stdout, errors to stderr. Spinners and progress bars go to stderr
too, so that `pgbackups backups --json | jq` or `backups-download -o - | …`
get nothing but what they asked for.

rich is imported by the functions that draw (tables, spinners, bars) only, so
that `pgbackups --help` and the commands that print lines start fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

ARROW = "-----> "
BANG = " !     "
INDENT = "       "
RESULT = "===> "

STATUS_STYLES = {"done": "green", "error": "red", "running": "yellow", "scheduled": "yellow"}


class Failure(click.ClickException):
    """A command failed: ` !     <message>` on stderr, exit 1."""

    def show(self, file: Any = None) -> None:
        shout(self.format_message(), file=file)


class Interrupted(Failure):
    """Ctrl-C: ` !     <what happens now>` on stderr, exit 130 (128 + SIGINT), as shells do."""

    exit_code = 130


def dim(message: str, *, err: bool = True) -> None:
    """A line of context (which API, for instance), dim on a terminal, plain when piped."""
    terminal = (sys.stderr if err else sys.stdout).isatty()
    click.echo(click.style(message, dim=True) if terminal else message, err=err)


def say(message: str, *, err: bool = False) -> None:
    """`-----> message`, on stdout unless `err`."""
    click.echo(_prefixed(ARROW, message, INDENT), err=err)


def note(message: str, *, err: bool = False) -> None:
    """An indented continuation line under a `----->` one."""
    click.echo(_prefixed(INDENT, message, INDENT), err=err)


def shout(message: str, *, file: Any = None) -> None:
    """` !     message` on stderr, every line prefixed, as the seed prints errors."""
    click.echo(_prefixed(BANG, message, BANG), file=file, err=file is None)


def _prefixed(first: str, message: str, rest: str) -> str:
    lines = message.splitlines() or [""]
    return "\n".join([first + lines[0], *(rest + line for line in lines[1:])])


SIZE_UNITS = ("kB", "MB", "GB", "TB", "PB")


def human_size(size: float | None) -> str:
    """`12.3 MB`: powers of 1000, as rich's download column counts, everywhere the
    project shows a size (CLI, demo); `-` if unknown."""
    if size is None:
        return "-"
    if size < 1000:
        return "1 byte" if size == 1 else f"{size:.0f} bytes"
    for unit in SIZE_UNITS:
        size /= 1000
        if size < 999.95 or unit == SIZE_UNITS[-1]:
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def human_time(value: str | None) -> str:
    """An RFC 3339 time of the API as `2026-11-25 03:40:12 UTC`; `-` if unknown."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def human_duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "-"
    try:
        begun = datetime.fromisoformat(start.replace("Z", "+00:00"))
        ended = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    seconds = max(round((ended - begun).total_seconds()), 0)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def schedule_text(schedule: Mapping[str, Any]) -> str:
    """`daily at 4:00 UTC`, or `disabled`."""
    if not schedule.get("enabled"):
        return "disabled"
    return f"daily at {schedule['hour']}:00 {schedule['timezone']}"


def print_json(value: Any) -> None:
    """The API's objects, unchanged, as indented JSON."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def stdout_console() -> Console:
    from rich.console import Console

    # Piped output is not cut at 80 columns: a table row stays one greppable line.
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=True, width=200)
    return console


def stderr_console(*, quiet: bool = False) -> Console:
    """Where spinners and progress bars draw; `quiet` silences them."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, quiet=quiet)


def _table(*columns: str, keep_whole: Mapping[str, int] | None = None) -> Table:
    """A table whose `keep_whole` columns (name → width) are never cut; the others
    wrap when the terminal is narrow."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.MINIMAL, show_edge=False, pad_edge=False, header_style="bold")
    whole = keep_whole or {}
    for column in columns:
        if column in whole:
            table.add_column(column, no_wrap=True, min_width=whole[column], overflow="fold")
        else:
            table.add_column(column, overflow="fold")
    return table


def _status(status: str) -> str:
    style = STATUS_STYLES.get(status)
    return f"[{style}]{status}[/]" if style else status


def backups_table(backups: Iterable[Mapping[str, Any]]) -> Table:
    """`ID │ CREATED AT │ METHOD │ SIZE │ STATUS`, in the order given (the API's: newest
    first). The ID is never cut: it is what the other commands take."""
    table = _table("ID", "CREATED AT", "METHOD", "SIZE", "STATUS", keep_whole={"ID": 26})
    for backup in backups:
        table.add_row(
            backup["id"],
            human_time(backup.get("created_at")),
            backup.get("method") or "-",
            human_size(backup.get("size")),
            _status(backup["status"]),
        )
    return table


def databases_table(databases: Iterable[Mapping[str, Any]]) -> Table:
    table = _table("NAME", "SCHEDULE", "LAST BACKUP", "REPLICA", keep_whole={"NAME": 4})
    for database in databases:
        last = database.get("last_backup")
        last_text = (
            f"{human_time(last.get('created_at'))} {_status(last['status'])}" if last else "none"
        )
        table.add_row(
            database["name"],
            schedule_text(database.get("schedule") or {}),
            last_text,
            "yes" if database.get("has_replica") else "no",
        )
    return table


def print_table(table: Table) -> None:
    console = stdout_console()
    if console.is_terminal:
        console.print(table)
        return
    # Piped: no padding at the ends of lines.
    with console.capture() as captured:
        console.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def print_fields(title: str, fields: Iterable[tuple[str, str]]) -> None:
    """`=== title` and aligned `Label: value` lines, as the seed's info commands print."""
    rows = [(label, value) for label, value in fields]
    width = max((len(label) for label, _ in rows), default=0) + 2
    click.echo(f"=== {title}")
    for label, value in rows:
        lines = value.splitlines() or [""]
        click.echo(f"{label + ':':<{width}}{lines[0]}".rstrip())
        for line in lines[1:]:
            click.echo(f"{'':<{width}}{line}".rstrip())


def is_interactive() -> bool:
    return sys.stdin.isatty()
