"""The built pgtools layer runs on Amazon Linux 2023 (glibc 2.34) on its own."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pgbackups.postgres.dump import DUMP_FLAGS, RESTORE_FLAGS
from pgbackups.postgres.pgtools import PgTools
from pgbackups_local.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration

TOOLS = ("pg_dump", "pg_restore", "psql", "pg_basebackup")
LAMBDA_GLIBC = (2, 34)
GLIBC_LIBS = {
    "linux-vdso.so.1", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libdl.so.2",
    "libpthread.so.0", "librt.so.1", "libresolv.so.2", "libutil.so.1",
}  # fmt: skip


def elf_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"]


def layer_only_env(layer: Path) -> dict[str, str]:
    """What Lambda gives a process: the layer's lib/ and bin/, no system PostgreSQL."""
    return {"LD_LIBRARY_PATH": str(layer / "lib"), "PATH": f"{layer / 'bin'}:/bin", "LC_ALL": "C"}


def test_the_layer_holds_the_tools_and_their_libraries(pgtools_dir: Path) -> None:
    assert sorted(p.name for p in (pgtools_dir / "bin").iterdir()) == sorted(TOOLS)
    libs = {p.name for p in (pgtools_dir / "lib").iterdir()}
    for expected in ("libpq.so.5", "libssl.so.3", "libcrypto.so.3", "libzstd.so.1", "liblz4.so.1",
                     "libz.so.1", "libgssapi_krb5.so.2", "libreadline.so.8"):  # fmt: skip
        assert expected in libs


def test_no_elf_file_needs_a_glibc_newer_than_2_34(pgtools_dir: Path) -> None:
    files = elf_files(pgtools_dir)
    assert len(files) >= 10
    too_new = {}
    for path in files:
        symbols = subprocess.run(
            ["objdump", "-T", str(path)], capture_output=True, text=True, check=True
        ).stdout
        versions = {
            tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", symbols)
        }
        newest = max(versions, default=(0,))
        if newest > LAMBDA_GLIBC:
            too_new[path.name] = ".".join(map(str, newest))
    assert too_new == {}


@pytest.mark.parametrize("tool", TOOLS)
def test_each_tool_runs_with_only_the_layer(pgtools_dir: Path, tool: str) -> None:
    env = layer_only_env(pgtools_dir)
    version = subprocess.run(
        [str(pgtools_dir / "bin" / tool), "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.match(rf"{tool} \(PostgreSQL\) 18\.\d+", version), version
    # Every library it loads beyond glibc comes from the layer, none from the system.
    resolved = subprocess.run(
        ["ldd", str(pgtools_dir / "bin" / tool)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    outside = [
        line.strip()
        for line in resolved.splitlines()
        if Path(line.split()[0]).name not in GLIBC_LIBS and str(pgtools_dir / "lib") not in line
    ]
    assert outside == []


def test_a_dump_made_with_the_layer_restores_with_the_layer(
    pgtools_dir: Path, postgres: EmbeddedPostgres, database_name: str, database_url: str
) -> None:
    postgres.psql(
        "CREATE TABLE notes (id serial PRIMARY KEY, body text, at timestamptz DEFAULT now());"
        "INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 1000) AS g",
        database_name,
    )
    tools = PgTools(pgtools_dir)
    dump = subprocess.run(
        [tools.program("pg_dump"), *DUMP_FLAGS, "--compress=zstd:3", f"--dbname={database_url}"],
        env=tools.environment(),
        capture_output=True,
        check=True,
    ).stdout
    assert dump[:5] == b"PGDMP"
    target = f"{database_name}_copy"
    postgres.create_database(target)
    subprocess.run(
        [tools.program("pg_restore"), *RESTORE_FLAGS, f"--dbname={postgres.url(target)}"],
        input=dump,
        env=tools.environment(),
        capture_output=True,
        check=True,
    )
    query = "SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM notes"
    assert postgres.psql(query, target) == postgres.psql(query, database_name)
    assert postgres.psql("SELECT count(*) FROM notes", target) == "1000"
