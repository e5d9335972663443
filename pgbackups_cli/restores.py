"""`restores-create`, `restores`, `restores-info`: restores run by the stack, where the
backups are (`POST /v1/databases/{db}/restores`), followed from here."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from pgbackups_cli.client import ApiFailure
from pgbackups_cli.follow import wait_for_run
from pgbackups_cli.output import (
    Failure,
    Interrupted,
    human_duration,
    human_time,
    note,
    print_fields,
    print_json,
    print_table,
    say,
    shout,
    stderr_console,
)
from pgbackups_cli.secret_input import target_url_option
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

if TYPE_CHECKING:
    from pgbackups.postgres.restore import Target


def _progress(restore: dict[str, Any]) -> str:
    progress = restore.get("progress") or {}
    restored, total = progress.get("restored") or 0, progress.get("total")
    return f"{restored}/{total} entries" if total else f"{restored} entries"


@click.command("restores-create")
@backup_option("The backup to restore: its id, or `latest` (the most recent successful one).")
@target_url_option(
    "The database to restore into (postgres://user:password@host:5432/db); `-` reads it "
    "from standard input. Checked by the stack with a real connection."
)
@click.option("--table", "-t", "tables", multiple=True, metavar="TABLE", help="Only this table.")
@click.option(
    "--schema", "-n", "schemas", multiple=True, metavar="SCHEMA", help="Only this schema."
)
@yes_option
@silent_option
@database_option
@api_options
def restores_create(
    backup_ref: str | None,
    target: Target | None,
    tables: tuple[str, ...],
    schemas: tuple[str, ...],
    yes: bool,
    silent: bool,
) -> None:
    """Restore a backup into a database, run by the stack where the backups are, and
    follow it until it is done."""
    if backup_ref is None:
        raise click.UsageError("--backup is required (a backup id, or latest)")
    if target is None:
        raise click.UsageError("--target-url is required (`-` reads it from standard input)")
    state = session()
    name = state.database_name()
    if not yes:
        shout(
            "WARNING: Destructive action\n"
            f"backup {backup_ref} of {name} will be restored into database {target.database} "
            f"on {target.address} ({target.redacted}): the objects it holds are dropped and "
            "recreated there."
        )
        confirm(f"Restore into {target.database} on {target.address}?")
    body: dict[str, Any] = {"backup_id": backup_ref, "target_url": target.url}
    body |= {"tables": list(tables), "schemas": list(schemas)}
    try:
        restore = state.client().post(state.database_path("restores"), body)
    except ApiFailure as failure:
        if failure.code != "confirmation_required":
            raise
        # The target is the backed-up database itself: only its name confirms that.
        if not yes:
            shout(f"The target is {name} itself: its current content is replaced.")
            confirm(f"Restore {name} in place?")
        restore = state.client().post(state.database_path("restores"), body | {"confirm": name})
    restore_id = restore["id"]
    say(f"Restoring backup {restore['backup_id']} of {name} into {restore['target']}")
    started = time.monotonic()
    try:
        with stderr_console(quiet=silent).status(f"Restoring: {restore['status']}") as spinner:

            def show(current: dict[str, Any]) -> None:
                elapsed = int(time.monotonic() - started)
                spinner.update(f"Restoring: {current['status']}, {elapsed}s, {_progress(current)}")

            path = state.database_path("restores", restore_id)
            restore = wait_for_run(state.client(), path, "restore", on_poll=show)
    except KeyboardInterrupt:
        raise Interrupted(
            "Stopped following the restore; the restore goes on. Check it with "
            f"`pgbackups restores-info -d {name} --restore {restore_id}`."
        ) from None
    for warning in restore.get("warnings") or []:
        note(warning)
    if restore["status"] != "done":
        raise Failure(f"Restore failed: {restore.get('error') or 'no reason was recorded'}")
    note(
        f"{_progress(restore)} in {human_duration(restore.get('started_at'), restore.get('finished_at'))}"
    )
    say("Restore successfully finished")


@click.command("restores")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@database_option
@api_options
@json_option
def restores(limit: int, as_json: bool) -> None:
    """List the restores run by the stack, newest first."""
    state = session()
    page = state.client().get(state.database_path("restores"), {"limit": limit})
    if as_json:
        print_json(page)
        return
    found = page["restores"]
    if not found:
        say(f"No restores of {state.database_name()} yet.")
        return
    from rich.table import Table

    table = Table("ID", "CREATED AT", "BACKUP", "TARGET", "STATUS", box=None)
    for restore in found:
        table.add_row(
            restore["id"],
            human_time(restore.get("created_at")),
            restore.get("backup_id") or "-",
            restore["target"],
            restore["status"],
        )
    click.echo(f"=== Restores of {state.database_name()}")
    print_table(table)


@click.command("restores-info")
@click.option("--restore", "-r", "restore_id", metavar="ID", help="Default: the newest restore.")
@database_option
@api_options
@json_option
def restores_info(restore_id: str | None, as_json: bool) -> None:
    """Show one restore's details."""
    state = session()
    if restore_id is None:
        page = state.client().get(state.database_path("restores"), {"limit": 1})
        if not page["restores"]:
            raise Failure(f"No restores of {state.database_name()} yet.")
        restore = page["restores"][0]
    else:
        restore = state.client().get(state.database_path("restores", restore_id.upper()))
    if as_json:
        print_json(restore)
        return
    fields = [
        ("Backup", restore.get("backup_id") or "-"),
        ("Target", restore["target"]),
        ("Tables", ", ".join(restore.get("tables") or []) or "all"),
        ("Schemas", ", ".join(restore.get("schemas") or []) or "all"),
        ("Status", restore["status"]),
        ("Runner", restore.get("runner") or "-"),
        ("Created at", human_time(restore.get("created_at"))),
        ("Started at", human_time(restore.get("started_at"))),
        ("Finished at", human_time(restore.get("finished_at"))),
        ("Duration", human_duration(restore.get("started_at"), restore.get("finished_at"))),
        ("Progress", _progress(restore)),
    ]
    fields += [("Warning", warning) for warning in restore.get("warnings") or []]
    if restore.get("error"):
        fields.append(("Error", restore["error"]))
    print_fields(f"Restore {restore['id']}", fields)


COMMANDS = [restores_create, restores, restores_info]
