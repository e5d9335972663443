"""`backups`, `backups-info`, `backups-create`, `backups-download`, `backups-restore`,
`backups-delete`, `backups-config`: the seed's backup commands on the HTTP API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from pgbackups_cli.download import (
    Archive,
    DownloadFailed,
    check,
    check_destination,
    destination_path,
    download_to_file,
    stream_archive,
)
from pgbackups_cli.follow import follow_run
from pgbackups_cli.output import (
    RESULT,
    Failure,
    Interrupted,
    backups_table,
    human_duration,
    human_size,
    human_time,
    is_interactive,
    note,
    print_fields,
    print_json,
    print_table,
    say,
    schedule_text,
    shout,
    stderr_console,
)
from pgbackups_cli.schedule_at import ScheduleAt, ScheduleAtError, parse_schedule_at
from pgbackups_cli.secret_input import TARGET_URL_ENV, target_url_option
from pgbackups_cli.session import (
    LATEST,
    Session,
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

PAGE_LIMIT = 100  # the API's largest page


# -- reading ------------------------------------------------------------------------------


@click.command("backups")
# The API judges the page size (and says why it refuses one): the help states its bounds.
@click.option(
    "--limit", type=int, default=20, show_default=True, help="How many (1\N{EN DASH}100)."
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Every backup, page after page (of --limit backups each, or 100).",
)
@click.option("--cursor", metavar="CURSOR", help="The page after this one (as --json gives it).")
@click.option(
    "--status", type=click.Choice(["scheduled", "running", "done", "error"]), help="Only these."
)
@click.option("--method", type=click.Choice(["periodic", "manual"]), help="Only these.")
@database_option
@api_options
@json_option
def backups(
    limit: int,
    everything: bool,
    cursor: str | None,
    status: str | None,
    method: str | None,
    as_json: bool,
) -> None:
    """List backups, newest first."""
    state = session()
    name = state.database_name()
    client = state.client()
    page_size = (
        PAGE_LIMIT if everything and limit_is_default(click.get_current_context()) else limit
    )
    query: dict[str, Any] = {"limit": page_size}
    query |= {"status": status, "method": method, "cursor": cursor}
    page = client.get(state.database_path("backups"), query)
    found = list(page["backups"])
    while everything and page.get("next_cursor"):
        page = client.get(state.database_path("backups"), query | {"cursor": page["next_cursor"]})
        found += page["backups"]
    if as_json:
        print_json({"backups": found, "next_cursor": page.get("next_cursor")})
        return
    if not found:
        if status or method:
            which = " ".join(word for word in (status, method) if word)
            say(f"No {which} backups of {name}.")
        elif cursor:
            say(f"No more backups of {name}.")
        else:
            say(f"No backups of {name} yet. Take one with `pgbackups backups-create`.")
        return
    click.echo(f"=== Backups of {name}")
    print_table(backups_table(found))
    if page.get("next_cursor"):
        shown = "The most recent backup" if len(found) == 1 else f"The {len(found)} most recent"
        note(
            f"{shown} shown; see more with --all, or the next page with "
            f"--cursor {page['next_cursor']}"
        )


def limit_is_default(ctx: click.Context) -> bool:
    from click.core import ParameterSource

    return ctx.get_parameter_source("limit") is ParameterSource.DEFAULT


def _newest_backup(state: Session) -> dict[str, Any]:
    page = state.client().get(state.database_path("backups"), {"limit": 1})
    if not page["backups"]:
        raise Failure(f"No backups of {state.database_name()} yet.")
    backup: dict[str, Any] = page["backups"][0]
    return backup


@click.command("backups-info")
@backup_option("Backup id, or `latest` (the newest done one). Default: the newest backup.")
@database_option
@api_options
@json_option
def backups_info(backup_ref: str | None, as_json: bool) -> None:
    """Show one backup's details."""
    state = session()
    if backup_ref is None:
        backup = _newest_backup(state)
    else:
        backup = state.client().get(state.database_path("backups", backup_ref))
    if as_json:
        print_json(backup)
        return
    fields = [
        ("Database", backup["database"]),
        ("Name", backup["name"]),
        ("Method", backup["method"]),
        ("Status", backup["status"]),
        ("Created at", human_time(backup.get("created_at"))),
        ("Started at", human_time(backup.get("started_at"))),
        ("Finished at", human_time(backup.get("finished_at"))),
        ("Waited", human_duration(backup.get("created_at"), backup.get("started_at"))),
        ("Duration", human_duration(backup.get("started_at"), backup.get("finished_at"))),
        ("Size", human_size(backup.get("size"))),
        ("Database size", human_size(backup.get("database_size"))),
        ("Compression", backup.get("compression") or "-"),
        ("Source", backup.get("source") or "-"),
        ("Runner", backup.get("runner") or "-"),
        ("Server version", backup.get("server_version") or "-"),
        ("pg_dump version", backup.get("pg_dump_version") or "-"),
        ("SHA-256", backup.get("sha256") or "-"),
        ("Kept as", backup.get("kept_as") or "-"),
        ("Locked until", human_time(backup.get("locked_until"))),
        ("Legal hold", "yes" if backup.get("legal_hold") else "no"),
    ]
    if backup.get("error"):
        fields.append(("Error", backup["error"]))
    print_fields(f"Backup {backup['id']}", fields)


# -- creating -----------------------------------------------------------------------------


@click.command("backups-create")
@click.option("--no-wait", is_flag=True, help="Return once the backup is scheduled.")
@silent_option
@database_option
@api_options
def backups_create(no_wait: bool, silent: bool) -> None:
    """Take a manual backup now and follow it until it is done."""
    state = session()
    name = state.database_name()
    client = state.client()
    backup = client.post(state.database_path("backups"), None)
    backup_id = backup["id"]
    say(f"Backing up {name} to {backup_id}")
    check = f"`pgbackups backups-info -d {name} --backup {backup_id}`"
    if no_wait:
        note(f"Follow it with {check}.")
        return

    def status(current: dict[str, Any], seconds: float) -> str:
        uploaded = current.get("uploaded")
        sent = f", {human_size(uploaded)} uploaded" if uploaded else ""
        return f"Backing up {name}: {current['status']}, {human_seconds(seconds)}{sent}"

    backup = follow_run(
        client, state.database_path("backups", backup_id), "backup",
        spinner=f"Backing up {name}: scheduled", status=status, check=check, going_on="it",
        quiet=silent,
    )  # fmt: skip
    if backup["status"] != "done":
        raise Failure(f"Backup failed: {backup.get('error') or 'no reason was recorded'}")
    note(
        f"{backup['name']}.pgsql, {human_size(backup.get('size'))} in "
        f"{human_duration(backup.get('started_at'), backup.get('finished_at'))}"
    )
    say("Backup successfully finished")


def human_seconds(seconds: float) -> str:
    minutes, whole = divmod(int(seconds), 60)
    return f"{minutes}m{whole:02d}s" if minutes else f"{whole}s"


# -- downloading --------------------------------------------------------------------------


def _selected_backup(state: Session, backup_ref: str | None, *, err: bool, quiet: bool) -> str:
    """The id of `backup_ref`; without one, the newest done backup, said so."""
    if backup_ref is not None and backup_ref != LATEST:
        return backup_ref
    backup = state.client().get(state.database_path("backups", LATEST))
    if not quiet:
        say("Selected the most recent successful backup", err=err)
        note(
            f"{backup['id']} of {human_time(backup.get('created_at'))}, "
            f"{human_size(backup.get('size'))}",
            err=err,
        )
    return str(backup["id"])


@click.command("backups-download")
@backup_option("Backup id. Default: the most recent successful backup.")
@click.option(
    "--output",
    "-o",
    metavar="PATH|-",
    help="A directory, a file, or - for stdout. Default: ./<name>.pgsql.",
)
@click.option("--force", "-f", is_flag=True, help="Overwrite the file -o names if it exists.")
@silent_option
@database_option
@api_options
def backups_download(backup_ref: str | None, output: str | None, force: bool, silent: bool) -> None:
    """Download a backup's archive (pg_dump custom format) and check its SHA-256."""
    state = session()
    to_stdout = output == "-"
    if to_stdout and sys.stdout.isatty():
        raise Failure(
            "Not writing an archive to a terminal: redirect it (-o - > FILE) or use -o PATH."
        )
    if not to_stdout:
        try:
            check_destination(output)
        except DownloadFailed as error:
            raise Failure(str(error)) from None
    backup_id = _selected_backup(state, backup_ref, err=to_stdout, quiet=silent)
    archive = Archive.from_api(
        state.client().get(state.database_path("backups", backup_id, "archive"))
    )
    progress = stderr_console(quiet=silent)
    if not to_stdout:
        path = destination_path(output, archive.filename)
        if path.exists() and not force:
            _confirm_overwrite(path)
    try:
        if to_stdout:
            sink = sys.stdout.buffer
            size, sha256 = stream_archive(archive, sink, progress)
            sink.flush()
            check(archive, size, sha256)
            shown = "stdout"
        else:
            download_to_file(archive, path, progress)
            shown = str(path)
    except DownloadFailed as error:
        raise Failure(str(error)) from None
    except OSError as error:  # stdout: a full disk or a closed pipe
        raise Failure(f"could not write to standard output: {error.strerror or error}") from None
    if not silent:
        click.echo(RESULT + shown, err=to_stdout)


def _confirm_overwrite(path: Path) -> None:
    """Failure unless the user agrees to replace `path` (no terminal: --force is needed)."""
    if not path.is_file():
        raise Failure(f"{path} exists and is not a file")
    if not is_interactive():
        raise Failure(f"{path} already exists: pass --force to overwrite it")
    try:
        agreed = click.confirm(f"{path} already exists. Overwrite it?", default=False)
    except click.Abort:
        click.echo(err=True)
        agreed = False
    if not agreed:
        raise Failure(f"Cancelled: {path} was kept (pass --force to overwrite it).")


# -- restoring ----------------------------------------------------------------------------


@click.command("backups-restore")
@backup_option("Backup id. Default: the most recent successful backup.")
@click.option(
    "--file",
    "archive_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Restore this downloaded archive instead of a backup from the API.",
)
@target_url_option(
    "postgres://user:password@host:5432/database to restore into; `-` reads it from "
    "standard input; asked for (hidden) on a terminal when not given."
)
@click.option(
    "--table",
    "-t",
    "tables",
    multiple=True,
    metavar="TABLE",
    help="Restore only this table (pg_restore -t); repeat for more.",
)
@click.option(
    "--schema",
    "-n",
    "schemas",
    multiple=True,
    metavar="SCHEMA",
    help="Restore only this schema (pg_restore -n); repeat for more.",
)
@yes_option
@silent_option
@database_option
@api_options
def backups_restore(
    backup_ref: str | None,
    archive_file: Path | None,
    target: Target | None,
    tables: tuple[str, ...],
    schemas: tuple[str, ...],
    yes: bool,
    silent: bool,
) -> None:
    """Restore a backup into --target-url with pg_restore 18 (--clean --if-exists …).

    The target is connected to first (host, credentials, database): nothing is
    downloaded when it cannot be reached. A backup from the API is streamed from
    storage into pg_restore (never written to disk), its SHA-256 checked on the way.
    """
    from pgbackups.postgres.restore import (
        RestoreFailed,
        RestoreProgress,
        Target,
        check_archive_file,
        check_target,
        count_entries,
        find_pgtools,
        run_pg_restore,
    )
    from pgbackups_cli.secret_input import ask_for_url

    if backup_ref is not None and archive_file is not None:
        raise click.UsageError("pass either --backup or --file, not both")
    if target is None:
        try:
            target = Target.parse(ask_for_url("--target-url", TARGET_URL_ENV, "Restore into"))
        except ValueError as error:
            raise click.UsageError(f"--target-url: {error}") from None
    try:
        tools = find_pgtools()
        if archive_file is not None:
            check_archive_file(archive_file)
        server = check_target(target)
    except RestoreFailed as error:
        raise Failure(str(error)) from None
    state = session()
    selection = [*(f"--table {t}" for t in tables), *(f"--schema {s}" for s in schemas)]
    if archive_file is not None:
        what = f"{archive_file}"
        redo = f"pgbackups backups-restore --file {archive_file}"
    else:
        backup_id = _selected_backup(state, backup_ref, err=False, quiet=silent)
        what = f"backup {backup_id} of {state.database_name()}"
        redo = f"pgbackups backups-restore -d {state.database_name()} --backup {backup_id}"
    redo = " ".join([redo, *selection, "--target-url -"])
    if not yes:
        shout(
            "WARNING: Destructive action\n"
            f"{what} will be restored into database {target.database} on {target.address}\n"
            f"({target.redacted}, PostgreSQL {server.version}): the objects it holds are "
            "dropped and recreated there."
        )
        confirm(f"Restore into {target.database} on {target.address}?")
    console = stderr_console(quiet=silent)
    feed = None
    total = None
    if archive_file is None:
        archive = Archive.from_api(
            state.client().get(state.database_path("backups", backup_id, "archive"))
        )

        def feed(sink: IO[bytes]) -> None:
            size, sha256 = stream_archive(archive, sink, stderr_console(quiet=True))
            check(archive, size, sha256)

        if not silent:
            say(
                f"Restoring {what} into {target.database} on {target.address} "
                f"(streamed from storage, {human_size(archive.size)}, SHA-256 checked)"
            )
    else:
        total = count_entries(tools, archive_file)
        if not silent:
            say(f"Restoring {what} into {target.database} on {target.address}")
    done = RestoreProgress()
    partial = (
        f"The target {target.database} on {target.address} is partial: {{}}.\n"
        f"Fix the cause and run it again (--clean drops and recreates what the backup "
        f"holds): {redo}"
    )
    try:
        with console.status("Running pg_restore…") as spinner:

            def show(count: int) -> None:
                counted = f"{min(count, total)}/{total}" if total else f"{count}"
                spinner.update(f"Running pg_restore: {counted} entries")

            outcome = run_pg_restore(
                tools, archive_file, target, on_progress=show, feed=feed,
                tables=tables, schemas=schemas, done=done,
            )  # fmt: skip
    except RestoreFailed as error:
        raise Failure(f"{error}\n{partial.format(done.summary())}") from None
    except KeyboardInterrupt:
        raise Interrupted(
            "Interrupted: pg_restore was stopped.\n" + partial.format(done.summary())
        ) from None
    if outcome.ignored_transaction_timeout:
        note(
            f"PostgreSQL {server.version} does not know transaction_timeout (pg_restore 18 "
            "sets it): that one error was ignored, nothing else failed."
        )
    say("Restore successfully finished")


# -- deleting ---------------------------------------------------------------------------


@click.command("backups-delete")
@backup_option("Backup id (required).")
@yes_option
@database_option
@api_options
def backups_delete(backup_ref: str | None, yes: bool) -> None:
    """Delete one backup: its archive and its record."""
    if backup_ref is None:
        raise click.UsageError("backups-delete needs --backup ID (see `pgbackups backups`)")
    state = session()
    name = state.database_name()
    backup = state.client().get(state.database_path("backups", backup_ref))
    if not yes:
        shout(
            f"WARNING: backup {backup['id']} of {name} ({human_time(backup.get('created_at'))}, "
            f"{human_size(backup.get('size'))}) will be deleted: its archive cannot be recovered."
        )
        confirm(f"Delete backup {backup['id']}?")
    state.client().delete(state.database_path("backups", backup["id"]))
    say(f"Backup {backup['id']} deleted")


# -- schedule ---------------------------------------------------------------------------


def _parse_schedule_at(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> ScheduleAt | None:
    if value is None:
        return None
    ctx.meta["pgbackups.schedule_at"] = value
    extra = ctx.params.get("extra") or ()
    if extra:
        return None  # said by the command, with the quoting it needs
    try:
        return parse_schedule_at(value)
    except ScheduleAtError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None


def _quote_hint(ctx: click.Context, extra: tuple[str, ...]) -> None:
    """`--schedule-at 3 Europe/Paris` without quotes: the shell split it; say how to quote."""
    if not extra:
        return
    given = ctx.meta.get("pgbackups.schedule_at")
    if given is None:
        raise click.UsageError(f"unexpected argument: {' '.join(extra)}")
    whole = " ".join((given, *extra))
    raise click.UsageError(
        f"--schedule-at takes one value, but the shell split it: quote it, "
        f'as in --schedule-at "{whole}"'
    )


def _say_schedule(schedule: dict[str, Any], *, changed: bool) -> None:
    if not schedule.get("enabled"):
        say("Periodic backups are disabled")
        return
    verb = "will be done" if changed else "are done"
    say(f"Periodic backups {verb} {schedule_text(schedule)}")
    if schedule.get("next_run_at"):
        note(f"Next one: {human_time(schedule['next_run_at'])}")


@click.command("backups-config")
@click.argument("extra", nargs=-1, is_eager=True, metavar="")
@click.option(
    "--schedule-at",
    metavar='"HOUR[:00] [TIMEZONE]"',
    callback=_parse_schedule_at,
    help='Daily at this hour: 3, "03:00", "4:00 UTC", "4h00 Europe/Paris", '
    '"3 Europe/Paris". A bare hour is in this machine\'s time zone.',
)
@click.option("--unschedule", is_flag=True, help="Stop periodic backups.")
@yes_option
@database_option
@api_options
@json_option
def backups_config(
    extra: tuple[str, ...],
    schedule_at: ScheduleAt | None,
    unschedule: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Show or change when periodic backups run."""
    _quote_hint(click.get_current_context(), extra)
    if schedule_at is not None and unschedule:
        raise click.UsageError("--schedule-at and --unschedule cannot be used together")
    state = session()
    path = state.database_path("schedule")
    client = state.client()
    if schedule_at is not None:
        if schedule_at.note:
            note(f"Note: {schedule_at.note}", err=True)
        schedule = client.put(
            path, {"enabled": True, "hour": schedule_at.hour, "timezone": schedule_at.timezone}
        )
    elif unschedule:
        if not yes:
            confirm(f"Stop the periodic backups of {state.database_name()}?")
        schedule = client.put(path, {"enabled": False})
    else:
        schedule = client.get(path)
    if as_json:
        print_json(schedule)
        return
    _say_schedule(schedule, changed=schedule_at is not None or unschedule)


COMMANDS = [
    backups,
    backups_info,
    backups_create,
    backups_download,
    backups_restore,
    backups_delete,
    backups_config,
]
