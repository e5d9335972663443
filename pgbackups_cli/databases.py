"""`databases`, `databases-add`, `databases-update`, `databases-remove`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import click

from pgbackups_cli.client import database_path
from pgbackups_cli.output import (
    databases_table,
    note,
    print_json,
    print_table,
    say,
    schedule_text,
    shout,
    stderr_console,
)
from pgbackups_cli.secret_input import ask_for_url, url_option
from pgbackups_cli.session import (
    api_options,
    check_database_name,
    confirm,
    json_option,
    session,
    silent_option,
    yes_option,
)

URL_ENV = "PGBACKUPS_DATABASE_URL"
REPLICA_URL_ENV = "PGBACKUPS_REPLICA_URL"
RUNNERS = ("auto", "lambda", "fargate")
# The API's bounds of each retention count (pgbackups.domain.models.RetentionPolicy, which
# the CLI does not load: pydantic is slow to import). Shown in the help; the API judges,
# and a count out of bounds gets its message.
RETENTION_RANGES = {"daily": (1, 35), "weekly": (0, 52), "monthly": (0, 120), "manual": (1, 500)}


@click.command("databases")
@api_options
@json_option
def databases(as_json: bool) -> None:
    """List the registered databases."""
    answer = session().client().get("/v1/databases")
    if as_json:
        print_json(answer)
        return
    found = answer["databases"]
    if not found:
        say("No databases yet. Add one with `pgbackups databases-add NAME --url -`.")
        return
    click.echo("=== Databases")
    print_table(databases_table(found))


def _keep_option[F: Callable[..., Any]](kind: str) -> Callable[[F], F]:
    low, high = RETENTION_RANGES[kind]
    return click.option(
        f"--keep-{kind}",
        type=int,
        metavar="N",
        help=f"{kind.capitalize()} backups kept ({low}\N{EN DASH}{high}).",
    )


def _connecting(message: str, silent: bool) -> contextlib.AbstractContextManager[Any]:
    return stderr_console(quiet=silent).status(message)


@click.command("databases-add")
@click.argument("name")
@url_option(
    "--url",
    envvar=URL_ENV,
    help_text="postgres://user:password@host:5432/database (kept in Secrets Manager only).",
)
@url_option("--replica-url", envvar=REPLICA_URL_ENV, help_text="A read replica to back up from.")
@silent_option
@api_options
def databases_add(name: str, url: str | None, replica_url: str | None, silent: bool) -> None:
    """Register database NAME; its URLs are checked with a real connection.

    Give the URL without putting its password on the command line:
    `pgbackups databases-add NAME --url - < url.txt`, PGBACKUPS_DATABASE_URL,
    or nothing, to be asked for it.
    """
    check_database_name(name, "NAME")
    if url is None:
        url = ask_for_url("--url", URL_ENV, f"Connection URL of {name}")
    body = {"name": name, "url": url}
    if replica_url is not None:
        body["replica_url"] = replica_url
    with _connecting(f"Connecting to {name} and registering it…", silent):
        created = session().client().post("/v1/databases", body)
    say(f"Database {name} added")
    note(f"Periodic backups: {schedule_text(created.get('schedule') or {})}")
    if created.get("has_replica"):
        note("Backups are taken from the replica when it is reachable")


@click.command("databases-update")
@click.argument("name")
@url_option("--url", envvar=URL_ENV, help_text="A new URL for the database.")
@url_option("--replica-url", envvar=REPLICA_URL_ENV, help_text="A (new) read replica.")
@click.option("--no-replica", is_flag=True, help="Stop backing up from the replica.")
@click.option(
    "--compression", metavar="SPEC", help="pg_dump compression: zstd:1, gzip:6, lz4, none…"
)
@_keep_option("daily")
@_keep_option("weekly")
@_keep_option("monthly")
@_keep_option("manual")
@click.option("--runner", type=click.Choice(RUNNERS), help="Where backups run.")
@silent_option
@api_options
@json_option
def databases_update(
    name: str,
    url: str | None,
    replica_url: str | None,
    no_replica: bool,
    compression: str | None,
    keep_daily: int | None,
    keep_weekly: int | None,
    keep_monthly: int | None,
    keep_manual: int | None,
    runner: str | None,
    silent: bool,
    as_json: bool,
) -> None:
    """Change database NAME: retention, compression, URLs, runner (what is not given stays)."""
    check_database_name(name, "NAME")
    if replica_url is not None and no_replica:
        raise click.UsageError("--replica-url and --no-replica cannot be used together")
    body: dict[str, Any] = {}
    if url is not None:
        body["url"] = url
    if replica_url is not None:
        body["replica_url"] = replica_url
    if no_replica:
        body["replica_url"] = None
    if compression is not None:
        body["compression"] = compression
    retention = {
        key: value
        for key, value in (
            ("daily", keep_daily),
            ("weekly", keep_weekly),
            ("monthly", keep_monthly),
            ("manual", keep_manual),
        )
        if value is not None
    }
    if retention:
        body["retention"] = retention
    if runner is not None:
        body["runner"] = runner
    if not body:
        raise click.UsageError(
            "nothing to change: pass --keep-daily/--keep-weekly/--keep-monthly/--keep-manual, "
            "--compression, --url, --replica-url, --no-replica or --runner"
        )
    with _connecting(f"Updating {name}…", silent):
        changed = session().client().request("PATCH", database_path(name), body=body)
    if as_json:
        print_json(changed)
        return
    say(f"Database {name} updated")
    policy = changed.get("retention") or {}
    note(
        f"Keeps {policy.get('daily')} daily, {policy.get('weekly')} weekly, "
        f"{policy.get('monthly')} monthly and {policy.get('manual')} manual backups"
    )
    note(f"Compression: {changed.get('compression')}")
    note(f"Replica: {'yes' if changed.get('has_replica') else 'none'}")
    if changed.get("runner"):
        note(f"Runner: {changed['runner']}")


@click.command("databases-remove")
@click.argument("name")
@yes_option
@api_options
def databases_remove(name: str, yes: bool) -> None:
    """Remove database NAME: its schedule stops, its backups expire under its policy."""
    check_database_name(name, "NAME")
    client = session().client()
    path = database_path(name)
    client.get(path)  # a clear "no database named …" before asking anything
    if not yes:
        shout(
            f"WARNING: database {name} will be removed: its periodic backups stop and its\n"
            "backups are deleted as its retention policy expires them."
        )
        confirm(f"Remove database {name}?")
    client.delete(path)
    say(f"Database {name} removed")


COMMANDS = [databases, databases_add, databases_update, databases_remove]
