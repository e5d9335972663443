"""A restore drill's throwaway PostgreSQL server and the connections to it.

The server (`throwaway_server`) is initdb'd in a private folder of the work dir, of
the install given (the source's major), listens on no TCP port (a unix socket in
that folder only, so `trust` authentication reaches no one else), and is stopped
and its folder removed on every way out, an exception or Ctrl-C/SIGTERM included.
Its configuration is written afresh from `SERVER_SETTINGS`, sized for a 2-vCPU,
4 GB task and unsafe on purpose (`fsync = off`): it is thrown away.

The drill's database (`create_database`) is owned by `DRILL_ROLE`, an unprivileged
role; an extension that needs a superuser and that only inspects
(`PRECREATED_EXTENSIONS`) is created in it before the restore, by us.
Connections use the server's own install (psycopg2 over the socket) with the session
overrides of `pgbackups.postgres.cluster`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from pgbackups.postgres.cluster import (
    SESSION_OVERRIDES,
    ClusterFailed,
    RecoveredCluster,
    _write_configuration,
    check_reachable,
    give_to,
    private_file,
    private_folder,
    server_user,
)

SUPERUSER = "pgbackups"
DRILL_ROLE = "pgbackups_drill"
DRILL_ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
DRILL_DATABASE = "drill"
# The socket's file name only (.s.PGSQL.<port>): the server listens on no TCP port.
PORT = 5432
# The superuser's sessions: pg_catalog alone on the search path (nothing of the database's
# schemas stands in for a built-in), and whatever the source set for its sessions undone.
SUPERUSER_OVERRIDES = (
    "-c search_path=pg_catalog -c statement_timeout=0 -c lock_timeout=0 "
    "-c idle_in_transaction_session_timeout=0 -c default_transaction_read_only=off"
)
# The session override an unprivileged role may set (cluster.SESSION_OVERRIDES).
UNPRIVILEGED_OVERRIDES = "-c local_preload_libraries="
CONNECT_TIMEOUT_SECONDS = 10
# A unix socket's path is at most 107 bytes (sun_path).
MAX_SOCKET_PATH = 107
# Extensions that need a superuser to create, whose functions only inspect: created by us
# before the restore when the archive has them, so that an unprivileged restore of a
# database that uses them does not fail (the archive's `CREATE EXTENSION IF NOT EXISTS`
# is then a no-op). Anything else that needs a superuser fails the restore, by name.
PRECREATED_EXTENSIONS = frozenset(
    {"pg_stat_statements", "pgstattuple", "pg_buffercache", "pg_visibility",
     "pg_freespacemap", "pgrowlocks", "amcheck"}
)  # fmt: skip
SERVER_SETTINGS = {
    "listen_addresses": "",
    "port": str(PORT),
    "unix_socket_permissions": "0700",
    "ssl": "off",
    "max_connections": "20",
    "shared_buffers": "512MB",
    "work_mem": "32MB",
    "maintenance_work_mem": "512MB",
    # mmap files in the data directory: a container's /dev/shm is often 64 MB.
    "dynamic_shared_memory_type": "mmap",
    "max_locks_per_transaction": "256",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "archive_mode": "off",
    # Fewer checkpoints, within the task's 20 GB of storage beside the restored data.
    "max_wal_size": "2GB",
    "checkpoint_timeout": "30min",
    "autovacuum": "off",
    "jit": "off",
    "log_min_messages": "warning",
    "TimeZone": "UTC",
}


class DrillFailed(Exception):
    """The drill could not run at all (no server, no connection); the reason."""


@dataclass(frozen=True)
class ServerHandle:
    """A running server the checks connect to, over its unix socket only."""

    install: Path
    socket_dir: Path
    port: int
    superuser: str
    os_user: str | None


def handle_of(cluster: RecoveredCluster) -> ServerHandle:
    """A recovered, running cluster (a point-in-time drill) as the checks see it."""
    return ServerHandle(
        install=cluster.install,
        socket_dir=cluster.socket_dir,
        port=cluster.port,
        superuser=cluster.bootstrap_user(),
        os_user=cluster.user,
    )


@contextlib.contextmanager
def throwaway_server(install: Path, work_dir: Path) -> Iterator[ServerHandle]:
    """A fresh server of `install` running in a private folder of `work_dir`; stopped and
    its folder removed on the way out, whatever happened."""
    user = server_user()
    root = Path(tempfile.mkdtemp(prefix="drill-", dir=work_dir))
    server = RecoveredCluster(
        data_dir=root / "data", install=install, socket_dir=root / "socket", port=PORT,
        user=user, log_file=root / "server.log",
    )  # fmt: skip
    try:
        try:
            check_reachable(root, user)  # the work dir and its parents
        except ClusterFailed as error:
            raise DrillFailed(str(error)) from None
        socket_path = server.socket_dir / f".s.PGSQL.{PORT}"
        if len(str(socket_path).encode()) > MAX_SOCKET_PATH:
            raise DrillFailed(
                f"the work folder's path is too long for a unix socket ({socket_path}): "
                "choose a shorter one"
            )
        give_to(user, root)
        private_folder(server.socket_dir, user)
        with private_file(server.log_file, user):
            pass
        try:
            server.run(
                "initdb", "--pgdata", str(server.data_dir), "--username", SUPERUSER,
                "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync",
                "--no-instructions",
            )  # fmt: skip
        except ClusterFailed as error:
            raise DrillFailed(f"the drill's server could not be created: {error}") from None
        server.major = int((server.data_dir / "PG_VERSION").read_text().strip())
        settings = SERVER_SETTINGS | {
            "unix_socket_directories": str(server.socket_dir),
            "hba_file": str(server.data_dir / "pgbackups_hba.conf"),
            "ident_file": str(server.data_dir / "pgbackups_hba.conf"),
        }
        if server.major >= 17:
            settings["event_triggers"] = "off"
        # trust: the socket is in a folder only the server's user (and root) can enter.
        _write_configuration(server, settings, "local all all trust\n")
        try:
            server.start()
        except ClusterFailed as error:
            raise DrillFailed(f"the drill's PostgreSQL {server.major}: {error}") from None
        yield ServerHandle(
            install=install, socket_dir=server.socket_dir, port=PORT, superuser=SUPERUSER,
            os_user=user,
        )  # fmt: skip
    finally:
        if (server.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(ClusterFailed, OSError):
                server.run(
                    "pg_ctl", "--pgdata", str(server.data_dir), "--mode", "immediate",
                    "--wait", "stop", check=False,
                )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: ServerHandle, extensions: Iterable[str]) -> None:
    """The drill's database, owned by `DRILL_ROLE`, with the allowed extensions the archive
    needs a superuser for (in the public schema, before anything of the archive exists)."""
    with connect_as(server, "postgres", server.superuser) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("CREATE ROLE {} " + DRILL_ROLE_ATTRIBUTES).format(
                    sql.Identifier(DRILL_ROLE)
                )
            )
            cursor.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8'").format(
                    sql.Identifier(DRILL_DATABASE), sql.Identifier(DRILL_ROLE)
                )
            )
    wanted = [name for name in extensions if name in PRECREATED_EXTENSIONS]
    if not wanted:
        return
    with connect_as(server, DRILL_DATABASE, server.superuser) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for name in wanted:
                # Not installed here: the archive's own CREATE EXTENSION fails, by name.
                with contextlib.suppress(psycopg2.Error):
                    cursor.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {} SCHEMA public").format(
                            sql.Identifier(name)
                        )
                    )


def server_version(server: ServerHandle) -> str:
    with (
        connect_as(server, "postgres", server.superuser) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SHOW server_version")
        row = cursor.fetchone()
    return str(row[0]).split()[0] if row else ""


# -- connections -----------------------------------------------------------------------------

# -- connections -----------------------------------------------------------------------------


@contextlib.contextmanager
def connect_as(server: ServerHandle, database: str, user: str, *settings: str) -> Iterator[Any]:
    """psycopg2 over the server's socket as `user` (as the superuser, with
    `SUPERUSER_OVERRIDES`); DrillFailed when it cannot connect."""
    if user == server.superuser:
        options = [SESSION_OVERRIDES, SUPERUSER_OVERRIDES, *settings]
    else:  # session_preload_libraries is the superuser's to set (`confine` resets it)
        options = [UNPRIVILEGED_OVERRIDES, *settings]
    try:
        connection = psycopg2.connect(
            host=str(server.socket_dir), port=server.port, user=user, dbname=database,
            options=" ".join(options), connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="pgbackups-drill",
        )  # fmt: skip
    except psycopg2.Error as error:
        reason = " ".join(str(error).split())
        raise DrillFailed(f"cannot connect to the drill's server as {user}: {reason}") from None
    try:
        yield connection
    finally:
        connection.close()
