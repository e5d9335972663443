"""pg_restore's command for the stack's restores (`pgbackups.postgres.restore`): what
`clean`, `tables` and `schemas` put on it, and never the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgbackups.postgres.pgtools import PgTools
from pgbackups.postgres.restore import Target, restore_command

pytestmark = pytest.mark.unit

TOOLS = PgTools(Path("/opt"))
TARGET = Target.registered("postgresql://app:s3cret@db.example.com:6543/restored")


def test_clean_drops_before_creating_and_can_be_turned_off() -> None:
    cleaning, _ = restore_command(TOOLS, None, TARGET)
    keeping, _ = restore_command(TOOLS, None, TARGET, clean=False)
    assert "--clean" in cleaning and "--if-exists" in cleaning
    assert "--clean" not in keeping and "--if-exists" not in keeping
    assert {"--no-owner", "--no-privileges", "--no-comments"} <= set(keeping)


def test_selection_and_the_password_kept_off_the_command_line() -> None:
    argv, env = restore_command(TOOLS, None, TARGET, ["items", "orders"], ["audit"])
    assert argv[0] == "/opt/bin/pg_restore"
    assert [arg for arg in argv if arg.startswith(("--table", "--schema"))] == [
        "--table=items",
        "--table=orders",
        "--schema=audit",
    ]
    assert not any("s3cret" in arg for arg in argv)
    assert env["PGPASSWORD"] == "s3cret"
    # A registered target's libpq files point nowhere (nothing of the runner's own).
    dbname = next(arg for arg in argv if arg.startswith("--dbname="))
    assert "passfile=" in dbname
