"""The Fargate task's bootstrap unpacks zips as Lambda does: modes and symlinks kept,
nothing written outside its folder."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import stat
import subprocess
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from pgbackups.postgres.cluster import as_user, check_reachable, server_user
from pgbackups.postgres.servers import server_install

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def bootstrap() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "task_bootstrap", ROOT / "functions" / "task_bootstrap.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def archive(*entries: tuple[str, int, bytes]) -> zipfile.ZipFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        for name, mode, data in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            package.writestr(info, data)
    return zipfile.ZipFile(io.BytesIO(buffer.getvalue()))


def test_modes_and_symlinks_are_restored(tmp_path: Path) -> None:
    package = archive(
        ("bin/pg_dump", stat.S_IFREG | 0o755, b"#!/bin/sh\necho 18.6\n"),
        ("lib/libpq.so.5.18", stat.S_IFREG | 0o644, b"ELF"),
        ("lib/libpq.so.5", stat.S_IFLNK | 0o777, b"libpq.so.5.18"),
        ("python/pkg/__init__.py", stat.S_IFREG | 0o644, b""),
    )
    assert bootstrap().unpack(package, tmp_path) == 4
    assert stat.S_IMODE((tmp_path / "bin/pg_dump").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "python/pkg/__init__.py").stat().st_mode) == 0o644
    link = tmp_path / "lib/libpq.so.5"
    assert link.is_symlink() and link.read_bytes() == b"ELF"


def test_a_later_layer_overwrites_an_earlier_one(tmp_path: Path) -> None:
    module = bootstrap()
    module.unpack(archive(("lib/x", stat.S_IFLNK | 0o777, b"y")), tmp_path)
    module.unpack(archive(("lib/x", stat.S_IFREG | 0o600, b"file")), tmp_path)
    assert not (tmp_path / "lib/x").is_symlink() and (tmp_path / "lib/x").read_bytes() == b"file"


@pytest.mark.parametrize(
    "entry",
    [
        ("../escape", stat.S_IFREG | 0o644, b"x"),
        ("/etc/passwd", stat.S_IFREG | 0o644, b"x"),
        ("lib/up", stat.S_IFLNK | 0o777, b"../../outside"),
        ("lib/abs", stat.S_IFLNK | 0o777, b"/etc/passwd"),
    ],
)
def test_nothing_is_written_outside_the_folder(
    tmp_path: Path, entry: tuple[str, int, bytes]
) -> None:
    module = bootstrap()
    target = tmp_path / "opt"
    target.mkdir()
    with pytest.raises(module.BootstrapError, match="refusing"):
        module.unpack(archive(entry), target)
    assert list(tmp_path.iterdir()) == [target]
    assert [p for p in target.rglob("*") if not p.is_dir()] == []


def test_files_are_not_written_through_a_symlinked_folder(tmp_path: Path) -> None:
    module = bootstrap()
    target = tmp_path / "opt"
    outside = tmp_path / "outside"
    outside.mkdir()
    target.mkdir()
    (target / "lib").symlink_to(outside)
    with pytest.raises(module.BootstrapError, match="outside"):
        module.unpack(archive(("lib/evil.so", stat.S_IFREG | 0o755, b"x")), target)
    assert list(outside.iterdir()) == []


def test_code_locations_must_be_https(tmp_path: Path) -> None:
    module = bootstrap()
    with pytest.raises(module.BootstrapError, match="https"):
        module.download("ftp://example.com/code.zip", tmp_path)


def test_a_chain_of_links_cannot_lead_outside(tmp_path: Path) -> None:
    """`deep -> .` then `esc -> deep/..`: each looks inside when read alone."""
    module = bootstrap()
    target = tmp_path / "opt"
    target.mkdir()
    package = archive(
        ("deep", stat.S_IFLNK | 0o777, b"."),
        ("esc", stat.S_IFLNK | 0o777, b"deep/.."),
    )
    with pytest.raises(module.BootstrapError, match="outside"):
        module.unpack(package, target)
    assert not (target / "esc").exists()


def test_a_link_made_to_escape_by_a_later_entry_is_refused(tmp_path: Path) -> None:
    """`a -> x/y/../..` is inside while x does not exist; `x -> .` then sends it out."""
    module = bootstrap()
    target = tmp_path / "opt"
    target.mkdir()
    package = archive(
        ("a", stat.S_IFLNK | 0o777, b"x/y/../.."),
        ("y/", stat.S_IFDIR | 0o755, b""),
        ("x", stat.S_IFLNK | 0o777, b"."),
    )
    with pytest.raises(module.BootstrapError, match="outside"):
        module.unpack(package, target)


def test_a_folder_entry_does_not_chmod_through_a_link(tmp_path: Path) -> None:
    module = bootstrap()
    target = tmp_path / "opt"
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    target.mkdir()
    (target / "lib").symlink_to(outside)
    with pytest.raises(module.BootstrapError, match="outside"):
        module.unpack(archive(("lib/", stat.S_IFDIR | 0o777, b"")), target)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o700


def test_code_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    module = bootstrap()
    package = tmp_path / "function.zip"
    package.write_bytes(b"PK tampered")
    with pytest.raises(module.BootstrapError, match="CodeSha256"):
        module.check_digest(package, "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=")


def test_an_unpacked_server_layer_is_found_and_usable_by_the_servers_user() -> None:
    """The task runs as root, the server as an unprivileged user: after the bootstrap,
    that user reaches the install in the task folder, reads it and runs its binaries,
    whatever modes the zip and the umask gave (no folder entries, files 0600/0700)."""
    module = bootstrap()
    layer = archive(
        ("postgresql-15/bin/postgres", stat.S_IFREG | 0o700, b"#!/bin/sh\necho 'postgres 15'\n"),
        ("postgresql-15/share/postgres.bki", stat.S_IFREG | 0o600, b"# catalog\n"),
        ("postgresql-15/lib/libpq.so.5", stat.S_IFLNK | 0o777, b"libpq.so.5.15"),
        ("postgresql-15/lib/libpq.so.5.15", stat.S_IFREG | 0o640, b"ELF"),
    )
    # Where the bootstrap puts it: a private folder of /tmp (tempfile.mkdtemp: 0700).
    task_dir = Path(tempfile.mkdtemp(prefix="pgbackups-", dir="/tmp"))
    previous = os.umask(0o077)
    try:
        opt = task_dir / "opt"
        opt.mkdir()
        module.unpack(layer, opt)
        module.open_servers(opt)
        install = server_install(15, [opt])
        assert install == (opt / "postgresql-15").resolve()
        assert stat.S_IMODE(install.stat().st_mode) == 0o755
        assert stat.S_IMODE((install / "bin/postgres").stat().st_mode) == 0o755
        assert stat.S_IMODE((install / "share/postgres.bki").stat().st_mode) == 0o644
        user = server_user()
        check_reachable(install / "bin", user)
        ran = subprocess.run(
            as_user(user, [str(install / "bin/postgres")]), capture_output=True, text=True
        )
        assert ran.stdout == "postgres 15\n", ran.stderr
        read = subprocess.run(
            as_user(user, ["/bin/cat", str(install / "share/postgres.bki")]),
            capture_output=True,
            text=True,
        )
        assert read.stdout == "# catalog\n", read.stderr
        # Others may enter the task folder, not list it.
        assert stat.S_IMODE(task_dir.stat().st_mode) == 0o711
    finally:
        os.umask(previous)
        shutil.rmtree(task_dir)
