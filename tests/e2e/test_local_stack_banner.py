"""What `pgbackups local` prints when it is up, pasted as a newcomer would: every command it
suggests works, in the folder where the stack runs, in a shell that only did what it says."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import START_TIMEOUT, STOP_TIMEOUT, pgbackups_command, stack_environment

pytestmark = pytest.mark.e2e


def suggested_commands(banner: str) -> list[str]:
    """The indented command lines under the banner's `Try, …` and `From any folder…`."""
    commands: list[str] = []
    taking = False
    for line in banner.splitlines():
        if line.startswith(("Try, in another terminal", "From any folder")):
            taking = True
        elif not line.strip():
            taking = False
        elif taking and line.startswith("  "):
            commands.append(line.split("   # ")[0].strip())
    return commands


def test_the_banners_commands_work_when_pasted(tmp_path: Path) -> None:
    log_path = tmp_path / "stack.log"
    env = stack_environment()
    # A shell whose PATH does not have this venv: the banner must say how to get `pgbackups`.
    venv_bin = str(Path(sys.executable).parent)
    shell_path = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    env["PATH"] = shell_path
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            pgbackups_command("local", "--port", "0", "--demo", "--demo-size-mb", "5"),
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "Ctrl-C stops everything." not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        banner = log_path.read_text()
        assert "state lives in memory and is gone when it stops" in banner
        commands = suggested_commands(banner)
        assert any(c.startswith("export PATH=") for c in commands), banner
        assert "pgbackups backups-create -d demo" in commands
        script = "set -e\n" + "\n".join(
            f"echo {shlex.quote('$ ' + c)}; {c}" + (" > /dev/null" if c.startswith("curl") else "")
            for c in commands
        )
        shell_env = {
            name: value for name, value in env.items() if not name.startswith("PGBACKUPS_")
        }
        shell_env.update(PATH=shell_path, HOME=str(tmp_path), PGBACKUPS_CONFIG=str(tmp_path / "x"))
        shell_env["PGBACKUPS_PGTOOLS_DIR"] = env.get("PGBACKUPS_PGTOOLS_DIR", "")
        result = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=shell_env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "-----> Backup successfully finished" in result.stdout
        assert "-----> Dispatcher ran as of " in result.stdout
        assert list(tmp_path.glob("*_demo.pgsql")), result.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_TIMEOUT) == 0


def test_the_banners_values_line_up(tmp_path: Path) -> None:
    from pgbackups_local.commands import _banner
    from pgbackups_local.stack import LocalStack, StackInfo

    info = StackInfo(
        api_url="http://127.0.0.1:3000",
        token="t",
        aws_endpoint_url="http://127.0.0.1:4000",
        region="eu-west-1",
        bucket="b",
        table="t",
        pid=1,
        lambda_endpoint_url="http://127.0.0.1:5000",
        demo_database_url="postgresql://x",
    )
    banner = _banner(info, LocalStack(state_dir=tmp_path))
    names = {"API", "Dashboard", "Token", "AWS", "IAM", "State", "Demo"}
    rows = [line for line in banner.splitlines() if line[2:].split(" ", 1)[0] in names]
    assert {line.split()[0] for line in rows} == names, banner
    # Every value starts in the same column, whatever its label's length.
    columns = {len(line) - len(line[2:].split(None, 1)[1]) for line in rows}
    assert len(columns) == 1, banner
    assert "IAM" in banner and "--no-iam" in banner
