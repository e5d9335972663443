"""`pg_restore --jobs` (`pgbackups.postgres.restore`): its command, and what its mixed
output means. The workers write to the same stderr as the leader at the same time, so
their lines come cut and interleaved; progress counts the leader's `finished item`
lines, and a server before 17 refuses transaction_timeout once per session (the
leader's count of errors ignored is its own only). A fake pg_restore replays what
pg_restore 18 printed with 2 jobs against PostgreSQL 15. And how many jobs a runner
gives it (`pgbackups.usecases.restores.restore_jobs`).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path

import pytest

from pgbackups.postgres.pgtools import PgTools
from pgbackups.postgres.restore import (
    RestoreFailed,
    RestoreProgress,
    Target,
    restore_command,
    run_pg_restore,
)
from pgbackups.settings import Settings
from pgbackups.usecases.restores import restore_jobs

pytestmark = pytest.mark.unit

TARGET = Target.registered("postgresql://app:s3cret@db.example.com:6543/restored")
TIMEOUT_ERROR = (
    'pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter "transaction_timeout"\n'
    "Command was: SET transaction_timeout = 0;\n"
)
# pg_restore 18, --jobs=2, into PostgreSQL 15 (workers' lines cut and mixed as they came).
PARALLEL_ON_15 = (
    "pg_restore: connecting to database for restore\n"
    "pg_restore: executing SELECT pg_catalog.set_config('search_path', '', false);\n"
    "pg_restore: while INITIALIZING:\n" + TIMEOUT_ERROR + "pg_restore: dropping TABLE b\n"
    "pg_restore: processing item 214 TABLE a\n"
    'pg_restore: creating TABLE "public.a"\n'
    "pg_restore: processing item 215 TABLE b\n"
    'pg_restore: creating TABLE "public.b"\n'
    "pg_restore: entering main parallel loop\n"
    "pg_restore: launching item 3345 TABLE DATA a\n"
    "pg_restore: launching item 3346 TABLE DATA b\n"
    "pg_restore:pg_restore: executing SELECT pg_catalog.set_config('search_path', '', false);\n"
    " executing SELECT pg_catalog.set_config('search_path', '', false);\n"
    "pg_restore:pg_restore: while PROCESSING TOC:\n"
    "pg_restore: while PROCESSING TOC:\n"
    "pg_restore: from TOC entry 215; 1259 16393 TABLE b postgres\n"
    + TIMEOUT_ERROR
    + " from TOC entry 215; 1259 16393 TABLE b postgres\n"
    "pg_restore:pg_restore: error: could not execute query: ERROR:  unrecognized configuration "
    'parameter "transaction_timeout"\n'
    "Command was: SET transaction_timeout = 0;\n"
    'pg_restore: processing data for table "public.b"\n'
    'pg_restore: processing data for table "public.a"\n'
    "pg_restore: finished item 3346 TABLE DATA b\n"
    "pg_restore: launching item 3202 INDEX b_id_idx\n"
    'pg_restore:pg_restore: creating INDEX "public.b_id_idx"\n'
    " finished item 3345 TABLE DATA a\n"
    "pg_restore: launching item 3201 CONSTRAINT a a_pkey\n"
    'pg_restore: creating CONSTRAINT "public.a a_pkey"\n'
    "pg_restore: finished item 3202 INDEX b_id_idx\n"
    "pg_restore: finished item 3201 CONSTRAINT a a_pkey\n"
    "pg_restore: finished main parallel loop\n"
    "pg_restore: executing SELECT pg_catalog.set_config('search_path', '', false);\n"
    "pg_restore: while PROCESSING TOC:\n" + TIMEOUT_ERROR + ""
    "pg_restore: warning: errors ignored on restore: 2\n"
)
ANOTHER_ERROR = (
    "pg_restore: error: could not execute query: ERROR:  permission denied for schema public\n"
    "Command was: CREATE TABLE public.c (id integer);\n"
)


def fake_pg_restore(root: Path, stderr: str, code: int) -> PgTools:
    """A pg_restore that prints `stderr` and exits `code` (and records its argv)."""
    (root / "bin").mkdir(parents=True)
    (root / "said").write_text(stderr)
    program = root / "bin" / "pg_restore"
    program.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {shlex.quote(str(root / "argv"))}\n'
        f"cat {shlex.quote(str(root / 'said'))} >&2\n"
        f"exit {code}\n"
    )
    program.chmod(0o755)
    return PgTools(root)


def test_jobs_are_on_the_command_line_of_a_file_restore_only(tmp_path: Path) -> None:
    tools = PgTools(Path("/opt"))
    argv, _ = restore_command(tools, tmp_path / "a.pgsql", TARGET, jobs=4)
    assert "--jobs=4" in argv
    assert argv[-1] == str(tmp_path / "a.pgsql")
    one, _ = restore_command(tools, tmp_path / "a.pgsql", TARGET, jobs=1)
    assert not any(arg.startswith("--jobs") for arg in one)
    with pytest.raises(ValueError, match="archive file"):
        restore_command(tools, None, TARGET, jobs=2)


def test_every_entry_counted_once_and_the_sessions_refusals_ignored(tmp_path: Path) -> None:
    tools = fake_pg_restore(tmp_path / "tools", PARALLEL_ON_15, 1)
    done = RestoreProgress()
    seen: list[int] = []

    outcome = run_pg_restore(tools, tmp_path / "a.pgsql", TARGET, seen.append, done=done, jobs=2)

    assert outcome.ignored_transaction_timeout
    # 2 tables created by the leader, then 4 items finished by the workers.
    assert len(done.entries) == 6
    assert seen == [1, 2, 3, 4, 5, 6]
    assert done.entries[-1] == "finished item 3201 CONSTRAINT a a_pkey"
    assert "--jobs=2" in (tmp_path / "tools" / "argv").read_text().splitlines()


def test_a_context_line_cut_into_an_error_prefix_is_no_error_of_its_own(tmp_path: Path) -> None:
    """Seen under load: one session's `error: ` prefix and another's context line on one
    line; the errors are still only the sessions' refusals of transaction_timeout."""
    said = PARALLEL_ON_15.replace(
        "pg_restore: finished main parallel loop\n",
        "pg_restore: error: pg_restore: while PROCESSING TOC:\n"
        + TIMEOUT_ERROR
        + "pg_restore: finished main parallel loop\n",
    )
    tools = fake_pg_restore(tmp_path / "tools", said, 1)

    outcome = run_pg_restore(tools, tmp_path / "a.pgsql", TARGET, jobs=2)

    assert outcome.ignored_transaction_timeout


def test_another_error_among_them_fails_the_restore(tmp_path: Path) -> None:
    said = PARALLEL_ON_15.replace(
        "pg_restore: finished main parallel loop\n",
        ANOTHER_ERROR + "pg_restore: finished main parallel loop\n",
    ).replace("errors ignored on restore: 2", "errors ignored on restore: 3")
    tools = fake_pg_restore(tmp_path / "tools", said, 1)

    with pytest.raises(RestoreFailed, match="permission denied for schema public"):
        run_pg_restore(tools, tmp_path / "a.pgsql", TARGET, jobs=2)


def test_jobs_follow_the_task_vcpus_and_the_cpus_it_sees() -> None:
    settings = Settings(table_name="t", bucket_name="b", secret_prefix="p")
    seen = len(os.sched_getaffinity(0))
    assert restore_jobs(dataclasses.replace(settings, task_cpu_units=512)) == 1
    assert restore_jobs(dataclasses.replace(settings, task_cpu_units=1024)) == 1
    assert restore_jobs(dataclasses.replace(settings, task_cpu_units=16384)) == seen
    assert restore_jobs(dataclasses.replace(settings, task_cpu_units=0)) == seen
    assert Settings.from_env({"TABLE_NAME": "t", "BUCKET_NAME": "b", "SECRET_PREFIX": "p",
                              "BACKUP_TASK_CPU": "2048"}).task_cpu_units == 2048  # fmt: skip
