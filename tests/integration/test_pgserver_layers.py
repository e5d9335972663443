"""The built server layers (layers/pgserver): each starts its PostgreSQL on its own, as
the Fargate task will on Amazon Linux 2023 (glibc 2.34), as an unprivileged user."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import importlib.util
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pgbackups.postgres.cluster import as_user, give_to, server_user
from pgbackups.postgres.servers import SHIPPED_MAJORS, ServerNotFound, server_dirs, server_install
from pgbackups_local.code_packages import CodePackages, zip_tree

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BUILT = tuple(ROOT / ".aws-sam" / "build" / f"PgServer{major}Layer" for major in SHIPPED_MAJORS)
TOOLS = ("postgres", "initdb", "pg_ctl", "pg_controldata", "psql", "pg_dump", "pg_restore",
         "pg_amcheck", "pg_isready")  # fmt: skip
LAMBDA_GLIBC = (2, 34)
GLIBC_LIBS = {
    "linux-vdso.so.1", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libdl.so.2",
    "libpthread.so.0", "librt.so.1", "libresolv.so.2", "libutil.so.1",
}  # fmt: skip


@pytest.fixture(params=SHIPPED_MAJORS, ids=lambda major: f"pg{major}")
def install(request: pytest.FixtureRequest) -> Path:
    """One major's install, from PGBACKUPS_PGSERVER_DIRS (`make` sets it) or the build."""
    try:
        return server_install(request.param, server_dirs() or BUILT)
    except ServerNotFound as error:
        pytest.fail(f"{error} (`make build` builds the server layers)")


def elf_files(root: Path) -> list[Path]:
    return [
        p for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.read_bytes()[:4] == b"\x7fELF"
    ]  # fmt: skip


def layer_only_env(install: Path) -> dict[str, str]:
    """What the task gives a server it starts (RecoveredCluster.env): its lib/, no system
    PostgreSQL on PATH."""
    return {"LD_LIBRARY_PATH": str(install / "lib"), "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


def test_the_layer_holds_what_a_restore_and_a_drill_need(install: Path) -> None:
    assert sorted(p.name for p in (install / "bin").iterdir()) == sorted(TOOLS)
    modules = {p.name for p in (install / "lib").iterdir()}
    for module in ("plpgsql.so", "dict_snowball.so", "amcheck.so", "pgcrypto.so", "libpq.so.5"):
        assert module in modules
    assert (install / "share" / "postgres.bki").is_file()
    assert (install / "share" / "extension" / "amcheck.control").is_file()
    assert not (install / "include").exists() and not (install / "share" / "doc").exists()


def test_no_elf_file_needs_a_glibc_newer_than_2_34(install: Path) -> None:
    files = elf_files(install)
    assert len(files) >= 50
    too_new = {}
    for path in files:
        symbols = subprocess.run(
            ["objdump", "-T", str(path)], capture_output=True, text=True, check=True
        ).stdout
        versions = {
            tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", symbols)
        }
        if max(versions, default=(0,)) > LAMBDA_GLIBC:
            too_new[path.name] = ".".join(map(str, max(versions)))
    assert too_new == {}


def test_every_library_loaded_beyond_glibc_comes_from_the_layer(install: Path) -> None:
    outside = {}
    for path in elf_files(install):
        resolved = subprocess.run(
            ["ldd", str(path)], env=layer_only_env(install), capture_output=True, text=True
        ).stdout
        for line in resolved.splitlines():
            name = line.split()[0]
            if Path(name).name in GLIBC_LIBS or "statically linked" in line:
                continue
            if str(install / "lib") not in line:
                outside[f"{path.name}: {name}"] = line.strip()
    assert outside == {}


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """A folder the server's user can reach (the task's is under /tmp too)."""
    folder = Path(tempfile.mkdtemp(prefix="pgserver-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_server_starts_from_its_layer_alone_and_runs_what_drills_use(
    install: Path, work_dir: Path
) -> None:
    started_server_answers(install, work_dir, int(install.name.removeprefix("postgresql-")))


def started_server_answers(install: Path, work_dir: Path, major: int) -> None:
    """initdb, start (unix socket only), the queries a drill runs, stop: as the server's
    user, with only the install's lib/ for libraries."""
    user = server_user()
    data, sockets = work_dir / "data", work_dir / "sockets"
    sockets.mkdir(mode=0o700)
    give_to(user, work_dir)
    env = layer_only_env(install)

    def run(program: str, *args: str) -> str:
        done = subprocess.run(
            as_user(user, [str(install / "bin" / program), *args]),
            env=env, capture_output=True, text=True, cwd="/", timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"{program}: {done.stderr}"
        return done.stdout

    run("initdb", "--pgdata", str(data), "--username", "postgres", "--auth", "trust",
        "--encoding", "UTF8", "--no-sync")  # fmt: skip
    options = f"-c listen_addresses='' -c unix_socket_directories={sockets}"
    run("pg_ctl", "--pgdata", str(data), "--log", str(work_dir / "server.log"),
        "--options", options, "--wait", "start")  # fmt: skip
    try:
        psql = ("psql", "--host", str(sockets), "--username", "postgres", "--no-psqlrc",
                "--tuples-only", "--no-align", "--dbname", "postgres")  # fmt: skip
        assert re.match(rf"PostgreSQL {major}\.\d+ ", run(*psql, "-c", "SELECT version()"))
        # Modules a restored database commonly loads: plpgsql, snowball, xml, amcheck.
        answers = run(
            *psql,
            "-c", "DO $$ BEGIN PERFORM 1; END $$",
            "-c", "SELECT to_tsvector('english', 'running dogs')",
            "-c", "SELECT xmlparse(document '<a>ü</a>')",
            "-c", "CREATE EXTENSION amcheck",
            "-c", "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g",
            "-c", "CREATE INDEX ON t (id)",
        )  # fmt: skip
        assert "'dog':2 'run':1" in answers and "<a>ü</a>" in answers
        run("pg_amcheck", "--host", str(sockets), "--username", "postgres",
            "--heapallindexed", "postgres")  # fmt: skip
        assert "accepting connections" in run("pg_isready", "--host", str(sockets))
    finally:
        run("pg_ctl", "--pgdata", str(data), "--mode", "fast", "--wait", "stop")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """Serve files on 127.0.0.1, as the local stack serves the built packages."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def url(path: Path) -> str:
        return f"http://127.0.0.1:{server.server_address[1]}/{path.relative_to(tmp_path)}"

    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_the_fargate_bootstrap_unpacks_a_server_layer_that_starts_as_the_servers_user(
    tmp_path: Path, served: Callable[[Path], str]
) -> None:
    """The server layer zipped as the local stack serves it (a sam deploy's zip keeps the
    same modes), downloaded, checked and unpacked by the task's bootstrap: the run finds
    it with PGSERVER_DIRS, and its server starts as the unprivileged user."""
    major = 15
    packages = CodePackages(ROOT / ".aws-sam" / "build", tmp_path / "packages")
    empty = tmp_path / "function"
    empty.mkdir()
    (empty / "backup_task.py").write_text("")
    zip_tree(empty, tmp_path / "function.zip")
    code = {
        "function": {
            "location": served(tmp_path / "function.zip"),
            "sha256": base64.b64encode(
                hashlib.sha256((tmp_path / "function.zip").read_bytes()).digest()
            ).decode(),
        },
        "layers": [
            {
                "location": served(packages.package(f"PgServer{major}Layer")),
                "sha256": packages.code_sha256(f"PgServer{major}Layer"),
            }
        ],
    }
    bootstrap = load_bootstrap()
    task_dir = Path(tempfile.mkdtemp(prefix="pgbackups-", dir="/tmp"))  # as on Fargate
    try:
        _, opt = bootstrap.install(code, task_dir)
        install = server_install(major, server_dirs({"PGSERVER_DIRS": str(opt)}))
        assert install == (opt / f"postgresql-{major}").resolve()
        work = task_dir / "drill"
        work.mkdir()
        started_server_answers(install, work, major)
    finally:
        shutil.rmtree(task_dir, ignore_errors=True)


def load_bootstrap() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "task_bootstrap", ROOT / "functions" / "task_bootstrap.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
