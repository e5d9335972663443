"""`backups-restore` stopped halfway (Ctrl-C, a failure): it says the target is partial, how
far pg_restore got and the command that redoes it (the fake API of test_cli_commands).
The restore itself, streamed into the real pg_restore, is tested end to end
(tests/e2e/test_cli_restore.py)."""

# The fake API's fixtures are imported by name, which ruff sees as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest

from pgbackups_cli import restore
from pgbackups_cli.restore import RestoreOutcome
from tests.unit.test_cli_commands import (  # noqa: F401 (fixtures)
    NEW_ID,
    TARGET,
    TARGET_ENV,
    RestoreSpy,
    api,
    downloadable,
    restores,
    run,
)

pytestmark = pytest.mark.unit


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
