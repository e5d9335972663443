"""`backups-download` when the file is already there or the disk is full: asked or refused,
a clear message, nothing left behind (the fake API of test_cli_commands answers)."""

# The fake API's fixtures are imported by name, which ruff sees as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgbackups_cli import backups
from tests.unit.test_cli_commands import (  # noqa: F401 (fixtures)
    ARCHIVE,
    FakeApi,
    api,
    downloadable,
    run,
)

pytestmark = pytest.mark.unit


def test_an_existing_file_is_not_overwritten_without_force(
    downloadable: FakeApi, tmp_path: Path
) -> None:
    (tmp_path / "shop.dump").write_bytes(b"previous")
    result = run("backups-download", "-o", "shop.dump")
    assert result.exit_code == 1 and "===>" not in result.stdout
    assert result.stderr == " !     shop.dump already exists: pass --force to overwrite it\n"
    assert (tmp_path / "shop.dump").read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == ["shop.dump"]

    forced = run("backups-download", "-o", "shop.dump", "--force")
    assert forced.exit_code == 0
    assert (tmp_path / "shop.dump").read_bytes() == ARCHIVE


def test_on_a_terminal_the_user_is_asked(
    downloadable: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backups, "is_interactive", lambda: True)
    (tmp_path / "shop.dump").write_bytes(b"previous")
    kept = run("backups-download", "-o", "shop.dump", input="n\n")
    assert kept.exit_code == 1
    assert "shop.dump already exists. Overwrite it? [y/N]" in kept.stdout
    assert "Cancelled: shop.dump was kept" in kept.stderr
    assert (tmp_path / "shop.dump").read_bytes() == b"previous"
    replaced = run("backups-download", "-o", "shop.dump", input="y\n")
    assert replaced.exit_code == 0
    assert (tmp_path / "shop.dump").read_bytes() == ARCHIVE


@contextlib.contextmanager
def tiny_file_system(path: Path, size: str = "64k") -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"this test mounts a tiny tmpfs (as root): {mounted.stderr!r}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_a_full_disk_says_so_and_leaves_nothing(downloadable: FakeApi, tmp_path: Path) -> None:
    with tiny_file_system(tmp_path / "tiny") as tiny:
        result = run("backups-download", "-o", str(tiny))
        assert result.exit_code == 1 and "===>" not in result.stdout
        assert result.stderr.endswith(
            f" !     no space left on the device of {tiny}: nothing was kept (free space first)\n"
        )
        assert list(tiny.iterdir()) == []
