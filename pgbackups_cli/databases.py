"""`databases`, `databases-add`, `databases-remove`."""

from __future__ import annotations

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
from pgbackups_cli.session import (
    api_options,
    check_database_name,
    confirm,
    json_option,
    session,
    yes_option,
)


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
        say("No databases yet. Add one with `pgbackups databases-add NAME --url postgres://…`.")
        return
    click.echo("=== Databases")
    print_table(databases_table(found))


@click.command("databases-add")
@click.argument("name")
@click.option(
    "--url",
    required=True,
    metavar="URL",
    help="postgres://user:password@host:5432/database (kept in Secrets Manager only).",
)
@click.option("--replica-url", metavar="URL", help="A read replica to back up from.")
@api_options
def databases_add(name: str, url: str, replica_url: str | None) -> None:
    """Register database NAME; its URLs are checked with a real connection."""
    check_database_name(name, "NAME")
    for option, value in (("--url", url), ("--replica-url", replica_url)):
        if value is not None and not value.startswith(("postgres://", "postgresql://")):
            raise click.UsageError(f"{option} must start with postgres:// or postgresql://")
    body = {"name": name, "url": url}
    if replica_url is not None:
        body["replica_url"] = replica_url
    with stderr_console().status(f"Connecting to {name} and registering it…"):
        created = session().client().post("/v1/databases", body)
    say(f"Database {name} added")
    note(f"Periodic backups: {schedule_text(created.get('schedule') or {})}")
    if created.get("has_replica"):
        note("Backups are taken from the replica when it is reachable")


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
