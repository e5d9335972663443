"""`make install-cli`: the README's way to put `pgbackups` on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_make_install_cli_links_pgbackups_into_local_bin(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["make", "-s", "install-cli"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    link = tmp_path / ".local" / "bin" / "pgbackups"
    assert link.resolve() == (Path(sys.executable).parent / "pgbackups").resolve()
    assert result.stdout.splitlines()[-1] == (
        f'Add ~/.local/bin to PATH: export PATH="{tmp_path}/.local/bin:$PATH"'
    )
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout == "pgbackups, version 0.1.0\n"
