"""The CLI's first hour, through the installed script on the local stack: which API it
talks to, the commands users reach for, progress, Ctrl-C, errors that teach."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from pgbackups_local.postgres import EmbeddedPostgres, free_port
from tests.e2e.conftest import Cli, Source, cells, lines, pgbackups_command

pytestmark = pytest.mark.e2e

UNKNOWN_ID = "01KB3ZQ4Y6M7T2N8S0F1E9V5ZZ"


def registered(cli: Cli, source: Source) -> str:
    names = [d["name"] for d in cli.api_get("/v1/databases")["databases"]]
    if source.name not in names:
        result = cli("databases-add", source.name, "--url", "-", input=source.url + "\n")
        assert result.returncode == 0, result.stderr
    return source.name


def backup_of(cli: Cli, name: str) -> str:
    result = cli("backups-create", "-d", name)
    assert result.returncode == 0, result.stderr
    return lines(result.stdout)[0].rsplit(" ", 1)[-1]


@contextmanager
def items_locked(source: Source) -> Iterator[None]:
    """pg_dump waits for this lock: the backup stays `running` until the block ends."""
    connection = psycopg2.connect(source.url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        connection.rollback()
        connection.close()


def wait_until_running(cli: Cli, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = cli.api_get(f"/v1/databases/{name}/backups?limit=1")
        if page["backups"] and page["backups"][0]["status"] == "running":
            return dict(page["backups"][0])
        time.sleep(0.1)
    pytest.fail("the backup did not start running")


def _sigint_as_on_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def terminal(**env: str) -> dict[str, str]:
    """rich draws spinners as on a terminal (the text is what a user sees)."""
    return {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", **env}


# -- which API --------------------------------------------------------------------------------


def test_version(cli: Cli, folder: Path) -> None:
    result = cli("--version")
    assert (result.returncode, result.stdout) == (0, "pgbackups, version 0.1.0\n")


def test_status_of_this_folders_stack(cli: Cli, folder: Path) -> None:
    names = sorted(d["name"] for d in cli.api_get("/v1/databases")["databases"])
    result = cli("status")
    assert (result.returncode, result.stderr) == (0, "")
    stack_file = folder / ".pgbackups-local" / "stack.json"
    assert lines(result.stdout) == [
        "=== pgbackups status",
        f"API:        {cli.stack.api_url}",
        f"From:       local stack {stack_file}",
        f"Token from: local stack {stack_file}",
        "Server:     reachable, token accepted",
        f"Databases:  {', '.join(names) if names else 'none yet'}",
    ]


def test_status_of_an_api_that_does_not_answer(cli: Cli, folder: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("status", PGBACKUPS_API_URL=url, PGBACKUPS_TOKEN="t")
    assert result.returncode == 1
    assert lines(result.stdout) == [
        "=== pgbackups status",
        f"API:        {url}",
        "From:       PGBACKUPS_API_URL",
        "Token from: PGBACKUPS_TOKEN",
        "Server:     unreachable",
    ]
    assert (
        result.stderr == f" !     Cannot reach the API at {url}: [Errno 111] Connection refused\n"
    )


def test_status_with_a_refused_token(cli: Cli, folder: Path) -> None:
    result = cli("status", PGBACKUPS_TOKEN="wrong")
    assert result.returncode == 1
    assert "Server:     reachable, token refused" in lines(result.stdout)
    assert result.stderr == " !     the API refused the token (PGBACKUPS_TOKEN)\n"


def test_login_with_a_pasted_v1_url_then_logout(cli: Cli, folder: Path, source: Source) -> None:
    name = registered(cli, source)
    config = folder / "home-config.json"
    token = str(cli.stack.info["token"])
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    env: dict[str, str | None] = {"PGBACKUPS_CONFIG": str(config)}

    nosuch = cli(
        "login", "--api-url", f"{cli.stack.api_url}/v1", "--token", token, "-d", "nosuch", **env
    )
    assert nosuch.returncode == 1
    assert nosuch.stderr.startswith(
        f" !     no database named nosuch at {cli.stack.api_url} (it has "
    )
    assert nosuch.stderr.endswith("): nothing was saved\n")
    assert not config.exists()

    login = cli(
        "login", "--api-url", f"{cli.stack.api_url}/v1/", "--token", token, "-d", name, **env
    )
    assert login.returncode == 0, login.stderr
    assert json.loads(config.read_text()) == {
        "api_url": cli.stack.api_url,
        "token": token,
        "database": name,
    }
    used = cli("backups", cwd=elsewhere, **env)
    assert used.returncode == 0, used.stderr
    assert used.stderr == f"Using {cli.stack.api_url} (from config file {config})\n"
    assert lines(used.stdout)[0] in (
        f"=== Backups of {name}",
        f"-----> No backups of {name} yet. Take one with `pgbackups backups-create`.",
    )

    out = cli("logout", **env)
    assert (out.returncode, out.stdout) == (0, f"-----> Logged out: {config} removed\n")
    assert not config.exists()
    again = cli("logout", **env)
    assert (again.returncode, again.stdout) == (0, f"-----> Not logged in: there is no {config}\n")
    gone = cli("backups", cwd=elsewhere, **env)
    assert gone.returncode == 1
    assert gone.stderr.startswith(" !     No API configured.")


# -- commands users reach for -------------------------------------------------------------------


def test_backups_info_shows_how_a_backup_was_taken(cli: Cli, folder: Path, source: Source) -> None:
    name = registered(cli, source)
    backup_id = backup_of(cli, name)
    result = cli("backups-info", "-d", name, "--backup", backup_id)
    assert result.returncode == 0, result.stderr
    shown = dict(line.split(":", 1) for line in lines(result.stdout)[1:] if ":" in line)
    shown = {label: value.strip() for label, value in shown.items()}
    record = cli.api_get(f"/v1/databases/{name}/backups/{backup_id}")
    assert shown["Method"] == "manual"
    assert shown["Source"] == "primary"
    assert shown["Compression"] == record["compression"]
    assert shown["pg_dump version"] == record["pg_dump_version"]
    assert shown["Server version"] == record["server_version"]
    assert shown["Kept as"] == "manual"
    assert shown["Runner"] == (record.get("runner") or "-")
    assert shown["Waited"].endswith("s")
    assert shown["Duration"].endswith("s")


def test_the_table_has_a_method_column_and_whole_ids_on_a_narrow_terminal(
    cli: Cli, folder: Path, source: Source
) -> None:
    name = registered(cli, source)
    backup_of(cli, name)
    result = cli("backups", "-d", name, COLUMNS="60", TTY_COMPATIBLE="1")
    assert result.returncode == 0, result.stderr
    ids = {b["id"] for b in cli.api_get(f"/v1/databases/{name}/backups?limit=100")["backups"]}
    header = " ".join(result.stdout.split())
    assert "METHOD" in header
    shown = {word for line in lines(result.stdout) for word in line.split() if word in ids}
    assert shown == ids  # every id, whole, though the terminal is narrow


def test_paging_with_all_and_cursor(cli: Cli, folder: Path, source: Source) -> None:
    name = registered(cli, source)
    while len(cli.api_get(f"/v1/databases/{name}/backups?limit=3")["backups"]) < 3:
        backup_of(cli, name)
    every = cli.api_get(f"/v1/databases/{name}/backups?limit=100")["backups"]

    first = cli("backups", "-d", name, "--limit", "1")
    next_cursor = cli.api_get(f"/v1/databases/{name}/backups?limit=1")["next_cursor"]
    assert lines(first.stdout)[-1] == (
        "       The most recent backup shown; see more with --all, or the next page with "
        f"--cursor {next_cursor}"
    )
    second = cli("backups", "-d", name, "--limit", "1", "--cursor", next_cursor, "--json")
    assert [b["id"] for b in json.loads(second.stdout)["backups"]] == [every[1]["id"]]

    paged = cli("backups", "-d", name, "--all", "--limit", "1", "--json")
    assert [b["id"] for b in json.loads(paged.stdout)["backups"]] == [b["id"] for b in every]
    table = cli("backups", "-d", name, "--all", "--limit", "1")
    assert [cells(line)[0] for line in lines(table.stdout)[3:]] == [b["id"] for b in every]


def test_filters_that_match_nothing_say_so(cli: Cli, folder: Path, source: Source) -> None:
    name = registered(cli, source)
    backup_of(cli, name)
    result = cli("backups", "-d", name, "--status", "error", "--method", "periodic")
    assert (result.returncode, result.stdout) == (
        0,
        f"-----> No error periodic backups of {name}.\n",
    )


def test_backups_delete(cli: Cli, folder: Path, source: Source) -> None:
    name = registered(cli, source)
    backup_id = backup_of(cli, name)

    needs_id = cli("backups-delete", "-d", name)
    assert needs_id.returncode == 2
    assert "backups-delete needs --backup ID" in needs_id.stderr

    refused = cli("backups-delete", "-d", name, "--backup", backup_id, input="n\n")
    assert refused.returncode == 1
    assert f" !     WARNING: backup {backup_id} of {name} (" in refused.stderr
    assert refused.stderr.endswith(
        " !     Cancelled: nothing was changed (pass --yes to skip this question).\n"
    )
    assert cli.api_get(f"/v1/databases/{name}/backups/{backup_id}")["id"] == backup_id

    deleted = cli("backups-delete", "-d", name, "--backup", backup_id, input="y\n")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.endswith(f"? [y/N]: -----> Backup {backup_id} deleted\n")
    response = cli.stack.api().get(f"{cli.stack.api_url}/v1/databases/{name}/backups/{backup_id}")
    assert response.status_code == 404

    again = cli("backups-delete", "-d", name, "--backup", backup_id, "--yes")
    assert (again.returncode, again.stderr) == (1, f" !     no backup {backup_id} of {name}\n")


def test_databases_update(cli: Cli, folder: Path, postgres: EmbeddedPostgres) -> None:
    url = postgres.create_database("cli_update")
    assert cli("databases-add", "cli_update", "--url", "-", input=url + "\n").returncode == 0

    nothing = cli("databases-update", "cli_update")
    assert nothing.returncode == 2
    assert "nothing to change" in nothing.stderr

    result = cli(
        "databases-update", "cli_update", "--keep-daily", "3", "--keep-manual", "2",
        "--compression", "gzip:6",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [
        "-----> Database cli_update updated",
        "       Keeps 3 daily, 4 weekly, 0 monthly and 2 manual backups",
        "       Compression: gzip:6",
        "       Replica: none",
        "       Runner: auto",
    ]
    database = cli.api_get("/v1/databases/cli_update")
    assert database["retention"] == {"daily": 3, "weekly": 4, "monthly": 0, "manual": 2}
    assert database["compression"] == "gzip:6"

    replica = cli("databases-update", "cli_update", "--replica-url", "-", input=url + "\n")
    assert replica.returncode == 0, replica.stderr
    assert "       Replica: yes" in lines(replica.stdout)
    assert cli.api_get("/v1/databases/cli_update")["has_replica"] is True
    dropped = cli("databases-update", "cli_update", "--no-replica")
    assert "       Replica: none" in lines(dropped.stdout)
    assert postgres.password not in replica.stdout + replica.stderr

    runner = cli("databases-update", "cli_update", "--runner", "lambda")
    assert runner.returncode == 0, runner.stderr
    assert lines(runner.stdout)[-1] == "       Runner: lambda"
    assert cli.api_get("/v1/databases/cli_update")["runner"] == "lambda"

    bad = cli("databases-update", "cli_update", "--compression", "brotli")
    assert (bad.returncode, bad.stderr) == (
        1,
        " !     compression: unknown compression 'brotli': use none, gzip[:1-9], lz4[:1-12] "
        "or zstd[:1-22]\n",
    )
    # The help's range is the API's, and a count outside it gets the API's own sentence.
    assert re.search(
        r"--keep-daily N\s+Daily backups kept \(1\u201335\)\.",
        cli("databases-update", "--help").stdout,
    )
    none_kept = cli("databases-update", "cli_update", "--keep-daily", "0")
    assert (none_kept.returncode, none_kept.stderr) == (
        1,
        " !     retention.daily: the number of daily backups to keep must be at least 1\n",
    )
    assert cli.api_get("/v1/databases/cli_update")["retention"]["daily"] == 3


def test_a_url_from_the_environment_or_stdin_never_in_argv(
    cli: Cli, folder: Path, postgres: EmbeddedPostgres
) -> None:
    url = postgres.create_database("cli_env_url")
    from_env = cli("databases-add", "cli_env_url", PGBACKUPS_DATABASE_URL=url)
    assert from_env.returncode == 0, from_env.stderr
    assert lines(from_env.stdout)[0] == "-----> Database cli_env_url added"

    # Typed on the command line, a URL with a password is refused before anything is sent.
    for args in (["--url", url], ["--url", "-", "--replica-url", url]):
        typed = cli("databases-add", "cli_typed_url", *args, input=url + "\n")
        assert typed.returncode == 2
        assert postgres.password not in typed.stdout + typed.stderr
        said = " ".join(typed.stderr.split())
        assert f"{args[-2]}: this URL holds a password" in said
        assert f"Pass {args[-2]} - and the URL on standard input" in said
    assert "cli_typed_url" not in [d["name"] for d in cli.api_get("/v1/databases")["databases"]]

    no_url = cli("databases-add", "cli_no_url")
    assert no_url.returncode == 2
    assert (
        "--url is required: pass --url - and the URL on standard input, set "
        "PGBACKUPS_DATABASE_URL, or run this on a terminal to be asked for it"
    ) in " ".join(no_url.stderr.split())

    # While `databases-add --url -` runs, its argv (as every user of the machine sees it)
    # holds no password.
    process = subprocess.Popen(
        pgbackups_command("databases-add", "cli_stdin_url", "--url", "-"),
        env=cli.environment(),
        cwd=cli.folder,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    argv: list[bytes] = []
    while b"databases-add" not in argv and time.monotonic() < deadline:  # until exec'd
        argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        time.sleep(0.01)
    out, err = process.communicate(postgres.create_database("cli_stdin_url") + "\n", timeout=60)
    assert process.returncode == 0, err
    assert b"-" in argv
    assert not any(postgres.password.encode() in part for part in argv)
    assert out.splitlines()[0] == "-----> Database cli_stdin_url added"


# -- progress and Ctrl-C ------------------------------------------------------------------------


def test_backups_create_shows_the_time_it_has_been_running(
    cli: Cli, folder: Path, source: Source
) -> None:
    name = registered(cli, source)
    with items_locked(source):
        process = subprocess.Popen(
            pgbackups_command("backups-create", "-d", name),
            env=cli.environment(**terminal()),
            cwd=cli.folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until_running(cli, name)
        time.sleep(2.5)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"Backing up {name}: running, 2s" in err
    assert lines(out)[-1] == "-----> Backup successfully finished"

    quiet = cli("backups-create", "-d", name, "-s", **terminal())
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_a_second_backup_while_one_runs_is_refused_naming_the_running_one_once(
    cli: Cli, folder: Path, source: Source
) -> None:
    name = registered(cli, source)
    with items_locked(source):
        first = cli("backups-create", "-d", name, "--no-wait")
        assert first.returncode == 0, first.stderr
        running = wait_until_running(cli, name)["id"]
        second = cli("backups-create", "-d", name)
    assert (second.returncode, second.stderr) == (
        1,
        f" !     a backup of {name} is already scheduled or running: {running}\n",
    )
    from tests.e2e.conftest import wait_for_backup

    assert wait_for_backup(cli.stack, name, running)["status"] == "done"


def test_ctrl_c_exits_130_and_the_backup_goes_on(cli: Cli, folder: Path, source: Source) -> None:
    name = registered(cli, source)
    with items_locked(source):
        process = subprocess.Popen(
            pgbackups_command("backups-create", "-d", name),
            env=cli.environment(),
            cwd=cli.folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As a terminal's foreground job: a test run started in the background of a
            # non-interactive shell inherits SIGINT ignored, and Python keeps it so.
            preexec_fn=_sigint_as_on_a_terminal,
        )
        # Ctrl-C while it follows the backup, as a person would: once it said which one.
        # (The backup may be running before the CLI has printed its answer.)
        assert process.stdout is not None
        said = process.stdout.readline()
        backup = wait_until_running(cli, name)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert lines(said + out) == [f"-----> Backing up {name} to {backup['id']}"]
    assert err == (
        " !     Stopped following the backup; it goes on. Check it with "
        f"`pgbackups backups-info -d {name} --backup {backup['id']}`.\n"
    )
    from tests.e2e.conftest import wait_for_backup

    assert wait_for_backup(cli.stack, name, backup["id"])["status"] == "done"


# -- errors that teach --------------------------------------------------------------------------


def test_an_unquoted_schedule_says_to_quote_it(cli: Cli, folder: Path, source: Source) -> None:
    name = registered(cli, source)
    result = cli("backups-config", "-d", name, "--schedule-at", "3", "Europe/Paris")
    assert result.returncode == 2
    assert (
        "--schedule-at takes one value, but the shell split it: quote it, as in "
        '--schedule-at "3 Europe/Paris"'
    ) in " ".join(result.stderr.split())


def test_an_unknown_time_zone_is_refused_before_any_request(cli: Cli, folder: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = cli(
        "backups-config", "-d", "shop", "--schedule-at", "3 Mars/Olympus",
        PGBACKUPS_API_URL=nowhere, PGBACKUPS_TOKEN="t",
    )  # fmt: skip
    assert result.returncode == 2
    assert "Cannot reach" not in result.stderr  # no request was made
    assert "unknown time zone 'Mars/Olympus'" in " ".join(result.stderr.split())


def test_downloading_a_failed_backup_reads_as_english(
    cli: Cli, folder: Path, postgres: EmbeddedPostgres
) -> None:
    url = postgres.create_database("cli_broken")
    assert cli("databases-add", "cli_broken", "--url", "-", input=url + "\n").returncode == 0
    postgres.psql('DROP DATABASE "cli_broken"')
    failed = cli("backups-create", "-d", "cli_broken")
    assert failed.returncode == 1
    backup_id = lines(failed.stdout)[0].rsplit(" ", 1)[-1]
    result = cli("backups-download", "-d", "cli_broken", "--backup", backup_id)
    assert (result.returncode, result.stderr) == (
        1,
        f" !     backup {backup_id} failed: only a done backup can be downloaded\n",
    )


def test_local_dispatch_errors_read_like_the_other_commands(cli: Cli, folder: Path) -> None:
    result = cli(
        "local", "dispatch", "--at", "2026-01-15T01:00:00Z", "--state-dir", str(folder / "none")
    )
    assert result.returncode == 1
    assert result.stderr.startswith(" !     no local stack is running with state dir ")


def test_downloads_are_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "20261125035315_shop.pgsql"],
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert ignored.returncode == 0


def test_on_a_terminal_the_url_is_asked_for_without_echo(
    cli: Cli, folder: Path, postgres: EmbeddedPostgres
) -> None:
    url = postgres.create_database("cli_prompted")
    primary, replica = pty.openpty()
    process = subprocess.Popen(
        pgbackups_command("databases-add", "cli_prompted"),
        env=cli.environment(),
        cwd=cli.folder,
        stdin=replica,
        stdout=replica,
        stderr=replica,
    )
    os.close(replica)
    seen = b""
    deadline = time.monotonic() + 60
    while b"hidden)" not in seen and time.monotonic() < deadline:
        seen += os.read(primary, 1024)
    assert (
        b"Connection URL of cli_prompted (postgresql://user:password@host:5432/db, hidden)" in seen
    )
    os.write(primary, url.encode() + b"\n")
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            seen += os.read(primary, 1024)
    os.close(primary)
    assert process.wait(timeout=30) == 0, seen.decode(errors="replace")
    assert b"-----> Database cli_prompted added" in seen
    assert postgres.password.encode() not in seen  # not echoed


def test_backups_create_shows_the_bytes_uploaded_so_far(
    cli: Cli, folder: Path, postgres: EmbeddedPostgres
) -> None:
    # Random bytes do not compress: at gzip:9, pg_dump takes seconds over 80 MB, during
    # which the archive's parts reach S3 one after the other.
    url = postgres.create_database("cli_slow")
    postgres.psql(
        "CREATE TABLE noise AS SELECT g AS id, decode(string_agg(md5(random()::text), ''), 'hex') "
        "AS bytes FROM generate_series(1, 8000) AS g, generate_series(1, 640) GROUP BY g",
        "cli_slow",
    )
    assert cli("databases-add", "cli_slow", "--url", "-", input=url + "\n").returncode == 0
    assert cli("databases-update", "cli_slow", "--compression", "gzip:9").returncode == 0
    result = cli("backups-create", "-d", "cli_slow", **terminal())
    assert result.returncode == 0, result.stderr
    assert re.search(r"Backing up cli_slow: running, \d+s, [\d.]+ MB uploaded", result.stderr)
