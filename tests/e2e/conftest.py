"""The local stack as a user runs it: `pgbackups local` in a subprocess, reached over HTTP.

Each stack gets free ports and its own state dir; the fixture stops it with
SIGTERM and checks that it exits 0. Nothing here imports the stack's code:
the tests see only the process, its stack.json and its HTTP endpoints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from pgbackups_local.postgres import free_port

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
        return self.state_dir / "stack.json"

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
    stack.info = json.loads(stack.stack_file.read_text())
    return stack


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One stack (no demo database) shared by a module's tests."""
    stack = start_stack(tmp_path_factory.mktemp("local-stack"))
    try:
        yield stack
    finally:
        code = stack.stop()
        assert code == 0, stack.log()[-3000:]
        assert not stack.stack_file.exists()


def wait_for_backup(
    stack: RunningStack, database: str, backup_id: str, timeout: float = 60
) -> dict[str, Any]:
    """Poll the API until the backup is done or error."""
    api = stack.api()
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(f"{stack.api_url}/v1/databases/{database}/backups/{backup_id}")
        assert response.status_code == 200, response.text
        backup: dict[str, Any] = response.json()
        if backup["status"] in ("done", "error"):
            return backup
        if time.monotonic() > deadline:
            pytest.fail(f"backup {backup_id} still {backup['status']} after {timeout} s")
        time.sleep(0.2)
