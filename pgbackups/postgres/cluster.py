"""A recovered PostgreSQL cluster: a base backup and WAL replayed on this machine.

The base backup and the WAL come from the source server, which is untrusted: a
superuser there can put anything in its configuration files (`ALTER SYSTEM SET
recovery_end_command = '…'`, `shared_preload_libraries`, `include_dir`) and
those files travel in the base backup. So nothing of the source's configuration
is used: `postgresql.conf` is written afresh from an allow-list, and
`postgresql.auto.conf`, `pg_hba.conf`, `pg_ident.conf` are ours. The only values
taken from the source are the ones recovery needs to be at least the primary's
(max_connections, …), read from `pg_controldata`, numbers only. The tar is
unpacked with the `data` filter (no absolute or escaping links, no devices),
and a base backup with tablespaces (links PostgreSQL would create anywhere) or
holding a shared library (which a C function `AS './lib.so'` would load) is
refused. Event triggers are off (a login trigger would run on our connections)
and clients override the preload settings a role may carry.

As root, the server runs as `postgres` (else `nobody`) through `runuser`.
Everything written is private: folders 0700, files 0600, owned by the server's
user. `pg_ctl -w` returns while recovery still runs, so the state is polled
with `pg_controldata` until the cluster is `in production`.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pgbackups.postgres.lsn import parse_lsn, segment_start

RECOVERY_TIMEOUT_SECONDS = 3600.0
HBA_FILE = "pgbackups_hba.conf"
WAL_NAME = re.compile(r"[0-9A-F]{24}")
ELF_MAGIC = b"\x7fELF"
# pg_controldata's line → the setting that must be at least the primary's during recovery.
CONTROL_SETTINGS = {
    "max_connections setting": "max_connections",
    "max_worker_processes setting": "max_worker_processes",
    "max_wal_senders setting": "max_wal_senders",
    "max_prepared_xacts setting": "max_prepared_transactions",
    "max_locks_per_xact setting": "max_locks_per_transaction",
}
# Files of the base backup that configure the server or its recovery: never the source's.
SOURCE_CONFIGURATION = (
    "postgresql.conf",
    "postgresql.auto.conf",
    "pg_hba.conf",
    "pg_ident.conf",
    "recovery.conf",
    "recovery.done",
    "standby.signal",
    "recovery.signal",
    "postmaster.pid",
    "postmaster.opts",
    "current_logfiles",
)
# The one command recovery runs: ours, copying a WAL file the restore downloaded and checked.
RESTORE_COMMAND = "/bin/cp {wal_dir}/%f %p"
# Settings a role or database of the source may carry (ALTER ROLE … SET) that load code
# into a session: a client connecting to the recovered cluster overrides them.
SESSION_OVERRIDES = "-c session_preload_libraries= -c local_preload_libraries="


class ClusterFailed(Exception):
    """The recovered cluster could not be built, started or recovered; the reason."""


def is_wal_name(name: str) -> bool:
    """Whether `name` is a WAL segment file name (timeline, log, segment: 24 hex digits)."""
    return WAL_NAME.fullmatch(name) is not None


# -- the server's user -------------------------------------------------------------------------


def server_user() -> str | None:
    """The user a server started by us runs as (PostgreSQL refuses root), or None: ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ClusterFailed("running as root and neither a 'postgres' nor a 'nobody' user exists")


def as_user(user: str | None, command: list[str]) -> list[str]:
    if user is None:
        return command
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        raise ClusterFailed("running as root needs `runuser` (util-linux) to start PostgreSQL")
    return [runuser, "-u", user, "--", *command]


def private_folder(path: Path, user: str | None) -> Path:
    """Create `path` (0700, owned by the server's user) and return it."""
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    give_to(user, path)
    return path


@contextlib.contextmanager
def private_file(path: Path, user: str | None) -> Iterator[IO[bytes]]:
    """`path` created 0600 (refusing an existing one), owned by the server's user."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as sink:
        yield sink
    give_to(user, path)


def give_to(user: str | None, *roots: Path) -> None:
    """Hand `roots` (and what they hold) to the server's user."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root in roots:
        for path in [root, *root.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def check_reachable(folder: Path, user: str | None) -> None:
    """As root the server runs as another user, who must be able to reach `folder`."""
    if user is None:
        return
    for parent in folder.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise ClusterFailed(
                f"as root, the server runs as {user}, which cannot enter {parent}: "
                "choose a directory it can reach (e.g. under /var/tmp)"
            )


def reachable_storage() -> Path:
    """The runner's storage that the server's user can reach (a throwaway server's, a
    recovered cluster's home): its temporary folder, or /var/tmp when that one is
    private to the runner's own user. ClusterFailed when none is."""
    user = server_user()
    candidates = (Path(tempfile.gettempdir()), Path("/var/tmp"), Path("/tmp"))  # noqa: S108
    for folder in candidates:
        try:
            check_reachable(folder / "work", user)
        except (ClusterFailed, OSError):
            continue
        return folder
    raise ClusterFailed(
        f"no folder of the runner's storage can be reached by the server's user ({user}): "
        f"looked at {', '.join(str(c) for c in candidates)}"
    )


# -- the base backup ---------------------------------------------------------------------------


def unpack_base_backup(tar_gz: Path, data_dir: Path) -> None:
    """The base backup's data directory in `data_dir`, without the source's configuration."""
    try:
        with tarfile.open(tar_gz, "r:gz") as archive:
            archive.extractall(data_dir, filter="data")
    except tarfile.FilterError as error:
        raise ClusterFailed(f"the base backup holds an unsafe entry, refused: {error}") from None
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ClusterFailed(f"the base backup is not a readable tar: {error}") from None
    tablespaces, links = data_dir / "pg_tblspc", data_dir / "tablespace_map"
    # pg_basebackup -Ft always sends a tablespace_map: empty without tablespaces.
    if (links.is_file() and links.read_bytes().strip()) or (
        tablespaces.is_dir() and any(tablespaces.iterdir())
    ):
        raise ClusterFailed(
            "the base backup has tablespaces, which a restore on this machine does not support"
        )
    for path in data_dir.rglob("*"):
        # A shared library in the data directory would load from a C function whose file
        # is a relative path (`AS './x.so'`): the server's working directory is this one.
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as file:
                if file.read(4) == ELF_MAGIC:
                    raise ClusterFailed(
                        f"the base backup holds an executable file, refused: "
                        f"{path.relative_to(data_dir)}"
                    )
    for name in SOURCE_CONFIGURATION:
        path = data_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for path in [data_dir, *data_dir.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)


# -- the cluster -------------------------------------------------------------------------------


@dataclass
class RecoveredCluster:
    """A data directory being recovered, and the server binaries of its major version."""

    data_dir: Path
    install: Path
    socket_dir: Path
    port: int
    user: str | None
    log_file: Path
    major: int = 0
    _bootstrap: str | None = field(default=None, repr=False, init=False)

    def _command(self, program: str, *args: str) -> list[str]:
        return as_user(self.user, [str(self.install / "bin" / program), *args])

    def pg_ctl(self) -> Path:
        return self.install / "bin" / "pg_ctl"

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.install / 'bin'}:/usr/bin:/bin",
            "LD_LIBRARY_PATH": str(self.install / "lib"),
            "LC_ALL": "C.UTF-8",
        }

    def client_env(self) -> dict[str, str]:
        """What a client connecting to the cluster adds to its environment."""
        return {"PGOPTIONS": SESSION_OVERRIDES}

    def run(self, program: str, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            self._command(program, *args), env=self.env() | self.client_env(),
            capture_output=True, text=True, check=False, cwd="/",
        )  # fmt: skip
        if check and result.returncode != 0:
            raise ClusterFailed(f"{program} failed: {result.stderr.strip()}")
        return result.stdout

    def control_data(self) -> dict[str, str]:
        out = self.run("pg_controldata", str(self.data_dir), check=False)
        return {
            key.strip(): value.strip()
            for key, _, value in (line.partition(":") for line in out.splitlines())
        }

    def start(self) -> None:
        try:
            self.run(
                "pg_ctl", "--pgdata", str(self.data_dir), "--log", str(self.log_file),
                "--wait", "--timeout", "600", "start",
            )  # fmt: skip
        except ClusterFailed:
            raise ClusterFailed(f"the recovered server did not start: {self.fatal()}") from None

    def stop(self) -> None:
        if self.alive():
            self.run("pg_ctl", "--pgdata", str(self.data_dir), "--mode", "fast", "--wait",
                     "stop", check=False)  # fmt: skip

    def state(self) -> str:
        return self.control_data().get("Database cluster state", "")

    def alive(self) -> bool:
        out = subprocess.run(
            self._command("pg_ctl", "--pgdata", str(self.data_dir), "status"),
            env=self.env(), capture_output=True, check=False, cwd="/",
        )  # fmt: skip
        return out.returncode == 0

    def wait_promoted(self, timeout: float = RECOVERY_TIMEOUT_SECONDS) -> None:
        """Until recovery has ended and the cluster is promoted; its FATAL line if it failed
        (for a time target, PostgreSQL refuses to end recovery before reaching it)."""
        deadline = time.monotonic() + timeout
        while self.state() != "in production":
            if not self.alive():
                raise ClusterFailed(f"recovery failed: {self.fatal()}")
            if time.monotonic() > deadline:
                raise ClusterFailed(f"recovery did not finish in {timeout:.0f} s")
            time.sleep(0.5)

    def replay_lsn(self) -> int:
        """Where replay ended (`pg_last_wal_replay_lsn()`, which stays put after promotion)."""
        out = self.run(
            "psql", "--no-psqlrc", "--tuples-only", "--no-align",
            f"--host={self.socket_dir}", f"--port={self.port}",
            f"--username={self.bootstrap_user()}", "--dbname=template1",
            "--command=SELECT pg_last_wal_replay_lsn()",
        )  # fmt: skip
        return parse_lsn(out.strip())

    def bootstrap_user(self, *roles: str) -> str:
        """The superuser initdb created on the source (the role of oid 10), read from the
        cluster's catalog connecting as one of `roles` (any existing role will do)."""
        known = self._bootstrap
        if known is None:
            for candidate in (*roles, "postgres"):
                with contextlib.suppress(ClusterFailed):
                    known = self.run(
                        "psql", "--no-psqlrc", "--tuples-only", "--no-align",
                        f"--host={self.socket_dir}", f"--port={self.port}",
                        f"--username={candidate}", "--dbname=template1",
                        "--command=SELECT rolname FROM pg_roles WHERE oid = 10",
                    ).strip()  # fmt: skip
                if known:
                    break
            else:
                raise ClusterFailed("could not find the recovered cluster's superuser")
            self._bootstrap = known
        return known

    def fatal(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        fatal = [i for i, line in enumerate(lines) if "FATAL" in line or "PANIC" in line]
        if not fatal:
            return (lines or ["no log"])[-1].strip()
        # The line before a FATAL often says which setting or file is wrong.
        return " ".join(line.strip() for line in lines[max(fatal[-1] - 2, 0) : fatal[-1] + 1])


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _conf(settings: dict[str, str]) -> str:
    return "".join(f"{name} = {_literal(value)}\n" for name, value in settings.items())


def _base_settings(cluster: RecoveredCluster) -> dict[str, str]:
    control = cluster.control_data()
    settings = {
        "listen_addresses": "",
        "port": str(cluster.port),
        "hba_file": str(cluster.data_dir / HBA_FILE),
        "ident_file": str(cluster.data_dir / HBA_FILE),
        "archive_mode": "off",
        "ssl": "off",
    }
    for line, name in CONTROL_SETTINGS.items():
        value = control.get(line, "")
        if value.isdigit():  # numbers only: nothing else of the source goes in
            settings[name] = value
    if cluster.major >= 17:
        settings["event_triggers"] = "off"  # a login trigger would run on our connections
    return settings


def configure_recovery(cluster: RecoveredCluster, wal_dir: Path, target_time: str | None) -> None:
    """A fresh configuration for recovery from `wal_dir` up to `target_time` (None: the end)."""
    data = cluster.data_dir
    settings = _base_settings(cluster) | {
        "unix_socket_directories": str(cluster.socket_dir),
        "hot_standby": "off",
        "restore_command": RESTORE_COMMAND.format(wal_dir=shlex.quote(str(wal_dir))),
        "recovery_target_action": "promote",
        "recovery_target_timeline": "current",
    }
    if target_time:
        moment = datetime.fromisoformat(target_time.replace("Z", "+00:00")).astimezone(UTC)
        settings["recovery_target_time"] = f"{moment:%Y-%m-%d %H:%M:%S.%f}+00"
        settings["recovery_target_inclusive"] = "on"
    _write_configuration(cluster, settings, "local all all trust\n")
    with private_file(data / "recovery.signal", cluster.user):
        pass


def leave_startable(cluster: RecoveredCluster) -> None:
    """After recovery: a configuration that works once our private folders are gone.

    Socket connections in /tmp only, peer authentication (the OS user is the role).
    """
    settings = _base_settings(cluster) | {
        "unix_socket_directories": "/tmp",  # noqa: S108 (where libpq looks by default)
    }
    _write_configuration(cluster, settings, "local all all peer\n")


def _write_configuration(cluster: RecoveredCluster, settings: dict[str, str], hba: str) -> None:
    data = cluster.data_dir
    for name in ("postgresql.conf", "postgresql.auto.conf", HBA_FILE):
        (data / name).unlink(missing_ok=True)
    with private_file(data / "postgresql.conf", cluster.user) as conf:
        conf.write(
            b"# Written by pgbackups: nothing of the source's configuration is kept.\n"
            + _conf(settings).encode()
        )
    with private_file(data / "postgresql.auto.conf", cluster.user):
        pass
    with private_file(data / HBA_FILE, cluster.user) as rules:
        rules.write(hba.encode())


def check_replayed_to(cluster: RecoveredCluster, last_wal: str) -> None:
    """ClusterFailed unless replay reached the last WAL file the restore was given."""
    size = int(cluster.control_data().get("Bytes per WAL segment", "0") or 0)
    if not size:
        raise ClusterFailed("pg_controldata does not say the WAL segment size")
    replayed = cluster.replay_lsn()
    if replayed < segment_start(last_wal, size):
        raise ClusterFailed(
            f"recovery stopped at {replayed >> 32:X}/{replayed & 0xFFFFFFFF:X}, before the "
            f"last WAL file {last_wal}: the restore is not complete"
        )
