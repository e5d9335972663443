"""`restores-create`, `restores`, `restores-info`: restores run by the stack, where the
backups are (`POST /v1/databases/{db}/restores`), followed from here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from pgbackups_cli.client import ApiFailure
from pgbackups_cli.follow import follow_run
from pgbackups_cli.output import (
    Failure,
    human_duration,
    human_time,
    note,
    print_fields,
    print_json,
    print_table,
    say,
    shout,
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
    if restore.get("kind") == "point_in_time" and total:  # recovery: the WAL it fetched
        return f"{restored}/{total} WAL files"
    return f"{restored}/{total} entries" if total else f"{restored} entries"


def _source(restore: dict[str, Any]) -> str:
    if restore.get("kind") == "point_in_time":
        return f"{restore.get('target_time') or 'latest'} (point in time)"
    return str(restore.get("backup_id") or "-")


@click.command("restores-create")
@backup_option("The backup to restore: its id, or `latest` (the most recent successful one).")
@click.option(
    "--time",
    "moment",
    metavar="TIME",
    help="Or a point in time (RFC 3339 with its offset, or `latest`) of the continuous backups.",
)
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
    moment: str | None,
    target: Target | None,
    tables: tuple[str, ...],
    schemas: tuple[str, ...],
    yes: bool,
    silent: bool,
) -> None:
    """Restore a backup or a point in time into a database, run by the stack where the
    backups are, and follow it until it is done."""
    if (backup_ref is None) == (moment is None):
        raise click.UsageError(
            "give exactly one of --backup (a backup id, or latest) and --time (a point in "
            "time, or latest)"
        )
    if moment is not None:
        from pgbackups_cli.pitr import parse_target_time

        moment = parse_target_time(moment)
    what = f"backup {backup_ref}" if moment is None else f"the state as of {moment}"
    if target is None:
        raise click.UsageError("--target-url is required (`-` reads it from standard input)")
    state = session()
    name = state.database_name()
    if not yes:
        shout(
            "WARNING: Destructive action\n"
            f"{what} of {name} will be restored into database {target.database} "
            f"on {target.address} ({target.redacted}): the objects it holds are dropped and "
            "recreated there."
        )
        confirm(f"Restore into {target.database} on {target.address}?")
    body: dict[str, Any] = {"target_url": target.url}
    body |= {"backup_id": backup_ref} if moment is None else {"target_time": moment}
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
    say(f"Restoring {_source(restore)} of {name} into {restore['target']}")
    restore = follow_run(
        state.client(), state.database_path("restores", restore_id), "restore",
        spinner=f"Restoring: {restore['status']}",
        status=lambda current, seconds: (
            f"Restoring: {current['status']}, {int(seconds)}s, {_progress(current)}"
        ),
        check=f"`pgbackups restores-info -d {name} --restore {restore_id}`", quiet=silent,
    )  # fmt: skip
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

    table = Table("ID", "CREATED AT", "SOURCE", "TARGET", "STATUS", box=None)
    for restore in found:
        table.add_row(
            restore["id"],
            human_time(restore.get("created_at")),
            _source(restore),
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
        ("Source", _source(restore)),
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
