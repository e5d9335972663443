"""`backups-download`: the archive, its digest checked, where it lands."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pgbackups_cli import backups, download
from tests.unit.cli_commands.fakes import (
    ARCHIVE,
    DIGEST,
    NEW_ID,
    FakeApi,
    archive_link,
    error,
    run,
)
from tests.unit.full_disk import tiny_file_system

pytestmark = pytest.mark.unit


def test_download_the_latest_into_the_current_folder(downloadable: FakeApi, tmp_path: Path) -> None:
    result = run("backups-download")
    assert result.exit_code == 0
    assert result.stdout == (
        "-----> Selected the most recent successful backup\n"
        f"       {NEW_ID} of 2026-11-25 03:40:12 UTC, 10.2 MB\n"
        "===> 20261125034012_shop.pgsql\n"
    )
    saved = tmp_path / "20261125034012_shop.pgsql"
    assert saved.read_bytes() == ARCHIVE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == [saved.name]


def test_the_archive_is_read_in_chunks(downloadable: FakeApi, tmp_path: Path) -> None:
    assert run("backups-download", "-o", "shop.dump").exit_code == 0
    assert downloadable.object_reads
    assert all(0 < size <= download.CHUNK_SIZE for size in downloadable.object_reads)
    assert len(downloadable.object_reads) > len(ARCHIVE) // download.CHUNK_SIZE


def test_download_a_given_backup_into_a_folder(downloadable: FakeApi, tmp_path: Path) -> None:
    (tmp_path / "dumps").mkdir()
    result = run("backups-download", "--backup", NEW_ID, "-o", "dumps")
    assert result.exit_code == 0
    assert result.stdout == "===> dumps/20261125034012_shop.pgsql\n"
    assert (tmp_path / "dumps" / "20261125034012_shop.pgsql").read_bytes() == ARCHIVE
    assert "GET /v1/databases/shop/backups/latest" not in downloadable.routes_called()


def test_download_into_a_file(downloadable: FakeApi, tmp_path: Path) -> None:
    result = run("backups-download", "-o", "shop.dump")
    assert result.stdout.endswith("===> shop.dump\n")
    assert (tmp_path / "shop.dump").read_bytes() == ARCHIVE


def test_download_to_stdout(downloadable: FakeApi) -> None:
    result = run("backups-download", "-o", "-")
    assert result.exit_code == 0
    assert result.stdout_bytes == ARCHIVE
    assert result.stderr == (
        "-----> Selected the most recent successful backup\n"
        f"       {NEW_ID} of 2026-11-25 03:40:12 UTC, 10.2 MB\n"
        "===> stdout\n"
    )


def test_download_silently(downloadable: FakeApi, tmp_path: Path) -> None:
    result = run("backups-download", "-s")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "20261125034012_shop.pgsql").read_bytes() == ARCHIVE


def test_a_digest_mismatch_leaves_no_file(downloadable: FakeApi, tmp_path: Path) -> None:
    downloadable.routes[f"GET /v1/databases/shop/backups/{NEW_ID}/archive"] = archive_link(
        sha256="0" * 64
    )
    result = run("backups-download", "-o", "shop.dump")
    assert result.exit_code == 1
    assert result.stderr == (
        f" !     SHA-256 mismatch: the backup's is {'0' * 64}, the download's is {DIGEST}\n"
    )
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == []


def test_a_mismatch_keeps_the_previous_file(downloadable: FakeApi, tmp_path: Path) -> None:
    (tmp_path / "shop.dump").write_bytes(b"previous")
    downloadable.routes[f"GET /v1/databases/shop/backups/{NEW_ID}/archive"] = archive_link(size=5)
    result = run("backups-download", "-o", "shop.dump", "--force")
    assert result.exit_code == 1
    assert "the download is incomplete" in result.stderr
    assert (tmp_path / "shop.dump").read_bytes() == b"previous"


def test_no_successful_backup(api: FakeApi) -> None:
    api.routes["GET /v1/databases/shop/backups/latest"] = error(
        404, "backup_not_found", "shop has no successful backup yet"
    )
    result = run("backups-download")
    assert (result.exit_code, result.stderr) == (1, " !     shop has no successful backup yet\n")


@pytest.mark.parametrize("output", ["missing/shop.dump", "missing/"])
def test_download_into_a_missing_folder(downloadable: FakeApi, output: str) -> None:
    result = run("backups-download", "-o", output)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == " !     no such directory: missing\n"
    assert downloadable.calls == []


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


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_a_full_disk_says_so_and_leaves_nothing(downloadable: FakeApi, tmp_path: Path) -> None:
    with tiny_file_system(tmp_path / "tiny") as tiny:
        result = run("backups-download", "-o", str(tiny))
        assert result.exit_code == 1 and "===>" not in result.stdout
        assert result.stderr.endswith(
            f" !     no space left on the device of {tiny}: nothing was kept (free space first)\n"
        )
        assert list(tiny.iterdir()) == []
