"""The local stack as a user runs it: `pgbackups local` in a subprocess, reached over HTTP.

Each stack gets free ports and its own state dir; the fixture stops it with
SIGTERM and checks that it exits 0. Nothing here imports the stack's code:
the tests see only the process, its stack.json and its HTTP endpoints.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from pgbackups.postgres.servers import PGSERVER_DIRS_ENV
from pgbackups_cli.client import ApiClient
from pgbackups_cli.follow import StillRunning
from pgbackups_cli.follow import wait_for_backup as wait_for_backup_of
from pgbackups_cli.pitr import server_binaries
from pgbackups_cli.stack_file import read_stack_file, stack_file_path
from pgbackups_local.postgres import EmbeddedPostgres, free_port

START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
BIN = Path(sys.executable).parent


def pgbackups_command(*args: str) -> list[str]:
    """`pgbackups …` from this venv (the installed console script)."""
    script = BIN / "pgbackups"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from pgbackups_cli import main; main()", *args]


def stack_environment() -> dict[str, str]:
    env = dict(os.environ)
    # The stack must not depend on the test session's moto settings.
    for name in [n for n in env if n.startswith("AWS_ENDPOINT_URL")]:
        del env[name]
    return env


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def stack_file(self) -> Path:
        return stack_file_path(self.state_dir)

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    def api(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.info['token']}"
        return session

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(
                f"the local stack did not stop within {STOP_TIMEOUT} s:\n{self.log()[-3000:]}"
            )


def start_stack(base_dir: Path, *args: str) -> RunningStack:
    state_dir = base_dir / "state"
    log_path = base_dir / "stack.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            pgbackups_command(
                "local", "--port", str(free_port()), "--state-dir", str(state_dir), *args
            ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=stack_environment(),
        )
    stack = RunningStack(process, state_dir, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while not stack.stack_file.exists():
        if process.poll() is not None:
            pytest.fail(f"the local stack exited with {process.returncode}:\n{stack.log()[-3000:]}")
        if time.monotonic() > deadline:
            stack.stop(signal.SIGKILL)
            pytest.fail(
                f"the local stack was not ready in {START_TIMEOUT} s:\n{stack.log()[-3000:]}"
            )
        time.sleep(0.1)
    stack.info = read_stack_file(state_dir)
    return stack


@contextlib.contextmanager
def stack_with_server_binaries(base_dir: Path) -> Iterator[RunningStack]:
    """A stack (no demo database, no Object Lock) whose Fargate tasks find the server
    binaries of PostgreSQL 18 (PGBACKUPS_PGSERVER_DIRS, unless already set): the point-in-time
    restores and the drills recover and restore there."""
    before = os.environ.get(PGSERVER_DIRS_ENV)
    servers: Path | None = None
    if not before:
        servers = Path(tempfile.mkdtemp(prefix="pgbackups-servers-", dir="/var/tmp"))
        servers.chmod(0o755)
        (servers / "postgresql-18").symlink_to(server_binaries(18, lambda _: None))
        os.environ[PGSERVER_DIRS_ENV] = str(servers)
    stack = start_stack(base_dir, "--backup-lock", "off")
    try:
        yield stack
    finally:
        code = stack.stop()
        if servers is not None:
            os.environ.pop(PGSERVER_DIRS_ENV, None)
            shutil.rmtree(servers, ignore_errors=True)
        assert code == 0, stack.log()[-3000:]


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One stack (no demo database) shared by a module's tests; without Object Lock, so
    that tests may delete the backups they take (test_object_lock_local.py: the default)."""
    stack = start_stack(tmp_path_factory.mktemp("local-stack"), "--backup-lock", "off")
    try:
        yield stack
    finally:
        code = stack.stop()
        assert code == 0, stack.log()[-3000:]
        assert not stack.stack_file.exists()


def wait_for_backup(
    stack: RunningStack, database: str, backup_id: str, timeout: float = 60
) -> dict[str, Any]:
    """The backup once done or error, polled as the CLI polls it (one home for waiting)."""
    client = ApiClient(stack.api_url, str(stack.info["token"]))
    try:
        return wait_for_backup_of(client, database, backup_id, timeout=timeout, poll_seconds=0.2)
    except StillRunning as error:
        pytest.fail(str(error))


# -- the CLI as a user runs it ------------------------------------------------------------

TIMEOUT = 180
ROWS_SQL = "SELECT count(*), md5(string_agg(i::text, ',' ORDER BY id)) FROM items i"
SAMPLE_SQL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE items (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    price numeric(10, 2),
    tags text[],
    attributes jsonb,
    feeling mood,
    created_at timestamptz DEFAULT now()
);
INSERT INTO items (name, price, tags, attributes, feeling)
SELECT 'item ' || g, g * 1.25, ARRAY['t' || g % 7, 'u'], jsonb_build_object('n', g, 'odd', g % 2 = 1),
       (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood
FROM generate_series(1, 20000) AS g;
CREATE VIEW expensive AS SELECT * FROM items WHERE price > 100;
"""


@dataclass
class Cli:
    """Runs the installed `pgbackups` against one stack, isolated from this machine's config."""

    stack: RunningStack
    folder: Path
    home: Path

    def environment(self, **changes: str | None) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("PGBACKUPS_") or name == "PGBACKUPS_PGTOOLS_DIR"
        }
        env.pop("XDG_CONFIG_HOME", None)
        env.update(
            HOME=str(self.home),
            PGBACKUPS_CONFIG=str(self.home / "no-config.json"),
            COLUMNS="200",
        )
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        cwd: Path | None = None,
        **env: str | None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            pgbackups_command(*args),
            env=self.environment(**env),
            cwd=cwd or self.folder,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    def binary(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            pgbackups_command(*args),
            env=self.environment(),
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )

    def api_get(self, path: str) -> Any:
        response = self.stack.api().get(f"{self.stack.api_url}{path}", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


def beside_the_stack(folder: Path, stack: RunningStack) -> Path:
    """`folder` as if `pgbackups local` ran there: its .pgbackups-local is the stack's."""
    (folder / ".pgbackups-local").symlink_to(stack.state_dir, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def cli(local_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    base = tmp_path_factory.mktemp("cli")
    (base / "work").mkdir()
    (base / "home").mkdir()
    return Cli(local_stack, beside_the_stack(base / "work", local_stack), base / "home")


@pytest.fixture
def folder(cli: Cli, tmp_path: Path) -> Iterator[Path]:
    """A fresh current folder for one test, beside the stack."""
    cli.folder = beside_the_stack(tmp_path, cli.stack)
    yield tmp_path


@dataclass
class Source:
    name: str
    url: str
    server: EmbeddedPostgres

    def rows(self, database: str | None = None) -> str:
        return self.server.psql(ROWS_SQL, database or self.name)


@pytest.fixture(scope="module")
def source(postgres: EmbeddedPostgres) -> Source:
    """A database with sample rows on the module's cluster (each module registers it on its stack)."""
    url = postgres.create_database("cli_shop")
    postgres.psql(SAMPLE_SQL, "cli_shop")
    return Source("cli_shop", url, postgres)


def lines(text: str) -> list[str]:
    return text.splitlines()


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("│")]
