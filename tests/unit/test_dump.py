"""pg_dump's command line: the password in its environment only, nothing read from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgbackups.postgres.dump import dump_command
from pgbackups.postgres.pgtools import NOWHERE, PgTools
from pgbackups.postgres.urls import registered_connection

pytestmark = pytest.mark.unit


def test_pg_dump_gets_the_password_through_its_environment_only() -> None:
    target = registered_connection("postgresql://app:hunter2@db/shop")
    argv, env = dump_command(PgTools(Path("/opt")), target, "zstd:3")
    assert not any("hunter2" in arg for arg in argv)
    assert env["PGPASSWORD"] == "hunter2"
    assert argv[0] == "/opt/bin/pg_dump"
    assert "--format=custom" in argv and "--compress=zstd:3" in argv
    assert argv[-1] == f"--dbname={target.conninfo}"
    assert env["LD_LIBRARY_PATH"] == "/opt/lib"


def test_pg_tools_read_no_password_service_or_system_file() -> None:
    env = PgTools(Path("/opt")).environment("pw")
    assert {env["PGPASSFILE"], env["PGSERVICEFILE"], env["PGSYSCONFDIR"]} == {NOWHERE}
    assert not Path(NOWHERE).exists()
