"""The `pgbackups` CLI as a user runs it: the installed script, in a subprocess, on the local stack.

Each test runs `pgbackups …` in a folder of its own whose `.pgbackups-local`
is the running stack's state dir (so the CLI finds the stack by itself, as in
the folder where `pgbackups local` runs), with an empty HOME, and checks what
it printed and its exit code. The round trip registers a real PostgreSQL database, backs it
up, lists, downloads and restores it into an empty database, and compares rows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgbackups_local.postgres import EmbeddedPostgres, free_port
from tests.e2e.conftest import (
    SAMPLE_SQL,
    Cli,
    Source,
    beside_the_stack,
    cells,
    lines,
    start_stack,
)

pytestmark = pytest.mark.e2e

UNKNOWN_ID = "01KB3ZQ4Y6M7T2N8S0F1E9V5ZZ"


# -- an empty stack; configuration and failures ---------------------------------------------


@pytest.fixture
def empty_stack(tmp_path: Path) -> Iterator[Cli]:
    """The CLI on a stack of this test's own: no other test has registered anything on it."""
    for folder in ("stack", "work", "home"):
        (tmp_path / folder).mkdir()
    stack = start_stack(tmp_path / "stack")
    try:
        yield Cli(stack, beside_the_stack(tmp_path / "work", stack), tmp_path / "home")
    finally:
        assert stack.stop() == 0, stack.log()[-3000:]


def test_an_empty_stack(empty_stack: Cli) -> None:
    cli = empty_stack
    result = cli("databases")
    assert (result.returncode, result.stdout) == (
        0,
        "-----> No databases yet. Add one with `pgbackups databases-add NAME --url -`.\n",
    )
    for command in ("backups", "backups-create", "backups-download", "backups-config"):
        result = cli(command)
        assert (result.returncode, result.stderr) == (
            1,
            " !     No database registered yet. Add one with "
            "`pgbackups databases-add NAME --url -`.\n",
        ), command
    assert json.loads(cli("databases", "--json").stdout) == {"databases": []}


def test_nothing_configured(cli: Cli, folder: Path) -> None:
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    result = cli("backups", cwd=elsewhere)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        " !     No API configured. Run `pgbackups login --api-url URL --token TOKEN`, or start "
        "the local stack in this folder with `pgbackups local` (or set PGBACKUPS_API_URL and "
        "PGBACKUPS_TOKEN).\n"
    )


def test_the_local_stacks_stack_json_in_the_current_folder(cli: Cli, folder: Path) -> None:
    copy = folder / "copy"
    (copy / ".pgbackups-local").mkdir(parents=True)
    shutil.copy(cli.stack.stack_file, copy / ".pgbackups-local" / "stack.json")
    result = cli("databases", "--json", cwd=copy)
    assert (result.returncode, result.stderr) == (0, "")  # this folder's stack: nothing to say
    assert "databases" in json.loads(result.stdout)
    from_env = cli(
        "databases",
        "--json",
        cwd=copy,
        PGBACKUPS_API_URL=cli.stack.api_url + "/v1/",  # as pasted from the banner's curl
        PGBACKUPS_TOKEN=str(cli.stack.info["token"]),
    )
    assert (from_env.returncode, from_env.stderr) == (0, "")  # the same API, however reached


def test_login_saves_the_credentials_for_later_commands(cli: Cli, folder: Path) -> None:
    config = folder / "config" / "pgbackups.json"
    env: dict[str, str | None] = {"PGBACKUPS_CONFIG": str(config)}
    wrong = cli("login", "--api-url", cli.stack.api_url, "--token", "not-the-token", **env)
    assert wrong.returncode == 1
    assert wrong.stderr == (
        f" !     The API at {cli.stack.api_url} refused the token from --token (403). "
        "Check it, or save the right one with `pgbackups login`.\n"
    )
    assert not config.exists()

    token = str(cli.stack.info["token"])
    result = cli("login", "--api-url", cli.stack.api_url, "--token", token, **env)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[0].startswith(f"-----> Logged in to {cli.stack.api_url} (")
    assert lines(result.stdout)[1] == f"       Saved to {config} (readable by you only)"
    assert json.loads(config.read_text()) == {"api_url": cli.stack.api_url, "token": token}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert cli("databases", **env).returncode == 0
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    saved = cli("databases", cwd=elsewhere, **env)
    assert saved.returncode == 0
    assert saved.stderr == f"Using {cli.stack.api_url} (from config file {config})\n"


def test_a_wrong_token(cli: Cli, folder: Path) -> None:
    result = cli("databases", PGBACKUPS_TOKEN="not-the-token")
    assert result.returncode == 1
    assert result.stderr == (
        f" !     The API at {cli.stack.api_url} refused the token from PGBACKUPS_TOKEN "
        "(403). Check it, or save the right one with `pgbackups login`.\n"
    )


def test_an_unreachable_api(cli: Cli, folder: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("backups", "-d", "shop", PGBACKUPS_API_URL=url, PGBACKUPS_TOKEN="t")
    assert result.returncode == 1
    assert result.stderr == (
        f"Using {url} (from PGBACKUPS_API_URL)\n"
        f" !     Cannot reach the API at {url}: [Errno 111] Connection refused\n"
    )


def test_an_unknown_database(cli: Cli, folder: Path) -> None:
    for args in (["backups", "-d", "nosuch"], ["-d", "nosuch", "backups-create"]):
        result = cli(*args)
        assert (result.returncode, result.stderr) == (1, " !     no database named nosuch\n")


def test_a_malformed_database_name(cli: Cli, folder: Path) -> None:
    result = cli("backups", "-d", "No Such")
    assert result.returncode == 2
    assert "--database: the database name must be 1 to 63 lowercase" in result.stderr


def test_a_refused_connection_url_is_not_echoed(cli: Cli, folder: Path, source: Source) -> None:
    wrong = source.url.replace(source.server.password, "wrong-password-123")
    result = cli("databases-add", "refused", "--url", "-", input=wrong + "\n")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f" !     url: cannot connect to postgresql://postgres:***@127.0.0.1:{source.server.port}/"
        "cli_shop: "
    )
    assert "wrong-password-123" not in result.stdout + result.stderr


# -- the round trip -------------------------------------------------------------------------


@pytest.fixture
def fresh_source(postgres: EmbeddedPostgres) -> Source:
    """The sample rows in a database of this test's own: registered nowhere, never backed up."""
    name = f"cli_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(name)
    postgres.psql(SAMPLE_SQL, name)
    return Source(name, url, postgres)


def test_round_trip(
    cli: Cli, folder: Path, fresh_source: Source, postgres: EmbeddedPostgres
) -> None:
    source = fresh_source
    name = source.name
    added = cli("databases-add", name, "--url", "-", input=source.url + "\n")
    assert (added.returncode, added.stdout) == (
        0,
        f"-----> Database {name} added\n       Periodic backups: daily at 1:00 Europe/Paris\n",
    )
    assert source.server.password not in added.stdout + added.stderr

    listed = cli("databases")
    assert listed.returncode == 0
    assert lines(listed.stdout)[0] == "=== Databases"
    assert cells(lines(listed.stdout)[1]) == ["NAME", "SCHEDULE", "LAST BACKUP", "REPLICA"]
    assert [name, "daily at 1:00 Europe/Paris", "none", "no"] in [
        cells(line) for line in lines(listed.stdout)[3:]
    ]

    empty = cli("backups", "-d", name)
    assert (empty.returncode, empty.stdout) == (
        0,
        f"-----> No backups of {name} yet. Take one with `pgbackups backups-create`.\n",
    )
    none_done = cli("backups-download", "-d", name)
    assert (none_done.returncode, none_done.stderr) == (
        1,
        f" !     {name} has no successful backup yet\n",
    )

    first = cli("backups-create", "-d", name)
    assert first.returncode == 0, first.stderr
    assert lines(first.stdout)[0].startswith(f"-----> Backing up {name} to ")
    assert lines(first.stdout)[-1] == "-----> Backup successfully finished"
    first_id = lines(first.stdout)[0].rsplit(" ", 1)[-1]

    second = cli("backups-create", "-d", name, "--no-wait")
    assert second.returncode == 0, second.stderr
    second_id = lines(second.stdout)[0].rsplit(" ", 1)[-1]
    assert lines(second.stdout)[1] == (
        f"       Follow it with `pgbackups backups-info -d {name} --backup {second_id}`."
    )
    followed = cli("backups-info", "-d", name, "--backup", second_id, "--json")
    assert json.loads(followed.stdout)["status"] in ("scheduled", "running", "done")
    _wait_until_done(cli, name, second_id)

    table = cli("backups", "-d", name)
    assert table.returncode == 0
    rows = lines(table.stdout)
    assert rows[0] == f"=== Backups of {name}"
    assert cells(rows[1]) == ["ID", "CREATED AT", "METHOD", "SIZE", "STATUS"]
    assert [cells(row)[0] for row in rows[3:]] == [second_id, first_id]  # newest first
    assert cells(rows[3])[2] == "manual"
    assert cells(rows[3])[4] == "done"
    assert cells(rows[3])[3].endswith(("kB", "MB"))
    page = json.loads(cli("backups", "-d", name, "--json").stdout)
    assert page == cli.api_get(f"/v1/databases/{name}/backups")

    info = cli("backups-info", "-d", name, "--backup", first_id)
    assert info.returncode == 0
    assert lines(info.stdout)[0] == f"=== Backup {first_id}"
    assert "Status:          done" in lines(info.stdout)
    assert "Method:          manual" in lines(info.stdout)

    # Download the newest done one into the current folder, checked against its digest.
    latest = cli.api_get(f"/v1/databases/{name}/backups/{second_id}")
    downloaded = cli("backups-download", "-d", name)
    assert downloaded.returncode == 0, downloaded.stderr
    assert lines(downloaded.stdout)[0] == "-----> Selected the most recent successful backup"
    assert lines(downloaded.stdout)[-1] == f"===> {latest['name']}.pgsql"
    archive = folder / f"{latest['name']}.pgsql"
    assert archive.read_bytes()[:5] == b"PGDMP"
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == latest["sha256"]
    assert archive.stat().st_size == latest["size"]

    # The first one, by id, into a folder; then to stdout.
    (folder / "dumps").mkdir()
    by_id = cli("backups-download", "-d", name, "--backup", first_id, "-o", "dumps")
    first_record = cli.api_get(f"/v1/databases/{name}/backups/{first_id}")
    assert by_id.stdout == f"===> dumps/{first_record['name']}.pgsql\n"
    piped = cli.binary("backups-download", "-d", name, "-o", "-", "-s")
    assert piped.returncode == 0
    assert piped.stderr == b""
    assert hashlib.sha256(piped.stdout).hexdigest() == latest["sha256"]

    unknown = cli("backups-download", "-d", name, "--backup", UNKNOWN_ID)
    assert (unknown.returncode, unknown.stderr) == (
        1,
        f" !     no backup {UNKNOWN_ID} of {name}\n",
    )

    # Restore into an empty database: the same rows come back.
    target = postgres.create_database("cli_restored")
    refused = cli("backups-restore", "-d", name, input="n\n", PGBACKUPS_TARGET_URL=target)
    assert refused.returncode == 1
    assert " !     WARNING: Destructive action" in refused.stderr
    assert f"postgresql://postgres:***@127.0.0.1:{postgres.port}/cli_restored" in refused.stderr
    assert postgres.password not in refused.stdout + refused.stderr
    assert (
        postgres.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'items'", "cli_restored")
        == "0"
    )

    restored = cli("backups-restore", "-d", name, "--yes", PGBACKUPS_TARGET_URL=target)
    assert restored.returncode == 0, restored.stderr
    assert lines(restored.stdout)[-1] == "-----> Restore successfully finished"
    assert source.rows("cli_restored") == source.rows()
    assert postgres.psql("SELECT count(*) FROM expensive", "cli_restored") == postgres.psql(
        "SELECT count(*) FROM expensive", name
    )

    # Again from the downloaded file, over what is there (--clean --if-exists).
    again = cli("backups-restore", "--file", str(archive), "--yes", PGBACKUPS_TARGET_URL=target)
    assert again.returncode == 0, again.stderr
    assert source.rows("cli_restored") == source.rows()


def _wait_until_done(cli: Cli, database: str, backup_id: str) -> None:
    from tests.e2e.conftest import wait_for_backup

    assert wait_for_backup(cli.stack, database, backup_id)["status"] == "done"


def test_restore_checks_the_target_before_anything_else(
    cli: Cli, folder: Path, source: Source, postgres: EmbeddedPostgres
) -> None:
    _ensure_registered(cli, source)
    _ensure_a_done_backup(cli, source.name)
    missing = postgres.url("no_such_database")
    result = cli("backups-restore", "-d", source.name, "--yes", PGBACKUPS_TARGET_URL=missing)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f" !     cannot connect to postgresql://postgres:***@127.0.0.1:{postgres.port}/"
        f'no_such_database: connection to server at "127.0.0.1", port {postgres.port} '
        'failed: FATAL: database "no_such_database" does not exist\n'
    )
    assert postgres.password not in result.stdout + result.stderr


def test_a_failed_backup(cli: Cli, folder: Path, postgres: EmbeddedPostgres) -> None:
    url = postgres.create_database("cli_doomed")
    assert cli("databases-add", "cli_doomed", "--url", "-", input=url + "\n").returncode == 0
    postgres.psql('DROP DATABASE "cli_doomed"')
    result = cli("backups-create", "-d", "cli_doomed")
    assert result.returncode == 1
    assert lines(result.stdout) == [lines(result.stdout)[0]]
    assert lines(result.stdout)[0].startswith("-----> Backing up cli_doomed to ")
    assert result.stderr.startswith(" !     Backup failed: ")
    assert 'database "cli_doomed" does not exist' in result.stderr
    failed = cli("backups", "-d", "cli_doomed")
    assert cells(lines(failed.stdout)[3])[3:] == ["-", "error"]


def test_a_database_must_be_named_when_there_are_several(
    cli: Cli, folder: Path, postgres: EmbeddedPostgres
) -> None:
    for name in ("cli_several_1", "cli_several_2"):
        added = cli(
            "databases-add", name, "--url", "-", input=postgres.create_database(name) + "\n"
        )
        assert added.returncode == 0, added.stderr
    names = sorted(d["name"] for d in cli.api_get("/v1/databases")["databases"])
    result = cli("backups")
    assert result.returncode == 2
    assert (
        f"There are {len(names)} databases: pass --database/-d with one of {', '.join(names)}"
        in " ".join(result.stderr.split())
    )


# -- schedule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("4:00 UTC", "4:00 UTC"),
        ("4h00 Europe/Paris", "4:00 Europe/Paris"),
        ("3 Europe/Paris", "3:00 Europe/Paris"),
        ("3", "3:00 Asia/Tokyo"),
        ("03:00", "3:00 Asia/Tokyo"),
        ("23:00 america/new_york", "23:00 America/New_York"),
    ],
)
def test_schedule_at(cli: Cli, folder: Path, source: Source, given: str, shown: str) -> None:
    _ensure_registered(cli, source)
    result = cli("backups-config", "-d", source.name, "--schedule-at", given, TZ="Asia/Tokyo")
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[0] == f"-----> Periodic backups will be done daily at {shown}"
    assert lines(result.stdout)[1].startswith("       Next one: ")
    hour, zone = shown.split(":00 ")
    schedule = json.loads(cli("backups-config", "-d", source.name, "--json").stdout)
    assert (schedule["enabled"], schedule["hour"], schedule["timezone"]) == (True, int(hour), zone)
    assert schedule == cli.api_get(f"/v1/databases/{source.name}/schedule")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("4:30", "'4:30': backups run on the hour, so the minutes must be :00, not :30"),
        ("24", "'24': the hour must be between 0 and 23, not 24"),
        ("noon", "'noon' is not an hour"),
        ("4pm", "'4pm' is not an hour: use the 24-hour clock"),
        ("4:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_schedule_strings(
    cli: Cli, folder: Path, source: Source, given: str, message: str
) -> None:
    result = cli("backups-config", "-d", source.name, "--schedule-at", given)
    assert result.returncode == 2
    assert f"Invalid value for '--schedule-at': {message}" in " ".join(result.stderr.split())


def test_unschedule(cli: Cli, folder: Path, source: Source) -> None:
    _ensure_registered(cli, source)
    both = cli("backups-config", "-d", source.name, "--unschedule", "--schedule-at", "3 UTC")
    assert both.returncode == 2
    assert "--schedule-at and --unschedule cannot be used together" in both.stderr

    refused = cli("backups-config", "-d", source.name, "--unschedule", input="n\n")
    assert refused.returncode == 1
    assert cli.api_get(f"/v1/databases/{source.name}/schedule")["enabled"] is True

    result = cli("backups-config", "-d", source.name, "--unschedule", "--yes")
    assert (result.returncode, result.stdout) == (0, "-----> Periodic backups are disabled\n")
    shown = cli("backups-config", "-d", source.name)
    assert shown.stdout == "-----> Periodic backups are disabled\n"
    assert cli("backups-config", "-d", source.name, "--schedule-at", "1 UTC").returncode == 0


# -- removal ----------------------------------------------------------------------------------


def test_databases_remove(cli: Cli, folder: Path, postgres: EmbeddedPostgres) -> None:
    url = postgres.create_database("cli_gone")
    assert cli("databases-add", "cli_gone", "--url", "-", input=url + "\n").returncode == 0
    refused = cli("databases-remove", "cli_gone", input="n\n")
    assert refused.returncode == 1
    assert "Remove database cli_gone? [y/N]" in refused.stdout
    assert refused.stderr.endswith(
        " !     Cancelled: nothing was changed (pass --yes to skip this question).\n"
    )
    result = cli("databases-remove", "cli_gone", "--yes")
    assert (result.returncode, result.stdout) == (0, "-----> Database cli_gone removed\n")
    names = [d["name"] for d in json.loads(cli("databases", "--json").stdout)["databases"]]
    assert "cli_gone" not in names
    again = cli("databases-remove", "cli_gone", "--yes")
    assert (again.returncode, again.stderr) == (1, " !     no database named cli_gone\n")


# -- helpers ----------------------------------------------------------------------------------


def _ensure_registered(cli: Cli, source: Source) -> None:
    names = [d["name"] for d in cli.api_get("/v1/databases")["databases"]]
    if source.name not in names:
        result = cli("databases-add", source.name, "--url", "-", input=source.url + "\n")
        assert result.returncode == 0, result.stderr


def _ensure_a_done_backup(cli: Cli, database: str) -> None:
    page = cli.api_get(f"/v1/databases/{database}/backups?status=done&limit=1")
    if not page["backups"]:
        result = cli("backups-create", "-d", database)
        assert result.returncode == 0, result.stderr
