"""Recovery to a point in time: the base backup and the WAL after it fetched and checked,
replayed into a `RecoveredCluster` that is promoted; then its database moved into a target.

One home for the CLI's `pitr-restore` (which fetches presigned URLs) and the runners
(which read the bucket): `Opener` is the only thing they differ in. Every file is
checked against the digest recorded when it was archived (never the object's own
metadata: whoever can write to the bucket can write that too), every WAL name against
the segment-name grammar before it becomes a path, and `latest` is checked to have
replayed up to the last WAL file given.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import re
import shutil
import socket
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from pgbackups.postgres.cluster import (
    RECOVERY_TIMEOUT_SECONDS,
    ClusterFailed,
    RecoveredCluster,
    check_replayed_to,
    configure_recovery,
    give_to,
    is_wal_name,
    private_file,
    private_folder,
    unpack_base_backup,
)

if TYPE_CHECKING:  # the CLI imports this module at start-up: pg_restore's side only when used
    from pgbackups.postgres.pgtools import PgTools
    from pgbackups.postgres.restore import RestoreOutcome, RestoreProgress, Target

MAX_WAL_SEGMENT = 1024 * 1024 * 1024  # --wal-segsize at most 1 GB
CHUNK = 1024 * 1024
# What PostgreSQL logs when recovery ends: the commit time replay reached.
_REACHED = re.compile(r"last completed transaction was at log time (\S+ \S+)")


class Readable(Protocol):
    def read(self, amt: int | None = ..., /) -> bytes: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class StoredFile:
    """One file a recovery fetches: what errors call it, where it is (what the `Opener`
    opens: a presigned URL, a bucket key), the digest and size recorded when it was
    archived."""

    what: str
    location: str
    sha256: str | None
    size: int | None


# Opens a stored file for reading; ClusterFailed saying why it cannot be read.
Opener = Callable[[StoredFile], Readable]


@dataclass(frozen=True)
class RecoverySource:
    """What a recovery replays: the base backup, then the WAL files in order (`wal` may be
    fetched page by page as it is iterated)."""

    server_major: int
    source_database: str
    source_user: str  # a role of the source, to find the cluster's superuser with
    target_time: datetime | None  # None: the end of the WAL given (the latest state)
    base: StoredFile
    wal_total: int
    wal: Iterable[tuple[str, StoredFile]]


def fetch(
    open_file: Opener,
    file: StoredFile,
    path: Path,
    user: str | None,
    deadline: float | None = None,
) -> int:
    """`file` into `path` (0600, the server's user), checked against its recorded digest
    and size; ClusterFailed naming it otherwise. `deadline` is on the monotonic clock."""
    if not file.sha256:
        raise ClusterFailed(f"{file.what}: the restore plan gives no checksum for it (refused)")
    digest = hashlib.sha256()
    size = 0
    body = open_file(file)
    try:
        with private_file(path, user) as sink:
            while chunk := body.read(CHUNK):
                if deadline is not None and time.monotonic() > deadline:
                    raise ClusterFailed(
                        "timed out: the recovery did not finish before its deadline"
                    )
                digest.update(chunk)
                sink.write(chunk)
                size += len(chunk)
    except (http.client.HTTPException, TimeoutError, ConnectionError) as error:
        raise ClusterFailed(f"{file.what}: the download was cut short ({error!r})") from None
    finally:
        body.close()
    if file.size is not None and size != file.size:
        raise ClusterFailed(
            f"{file.what}: {size} bytes received, the restore plan says {file.size}"
        )
    if digest.hexdigest() != file.sha256.lower():
        raise ClusterFailed(
            f"{file.what}: checksum mismatch (the download is corrupt): its SHA-256 is not "
            "the one recorded when it was archived"
        )
    return size


def fetch_wal(
    open_file: Opener,
    wal: Iterable[tuple[str, StoredFile]],
    wal_dir: Path,
    user: str | None,
    advance: Callable[[], object] = lambda: None,
    deadline: float | None = None,
) -> str | None:
    """Every WAL file into `wal_dir`, each checked and decompressed; the last one's name."""
    last = None
    for name, file in wal:
        if not is_wal_name(name):
            raise ClusterFailed(
                f"the restore plan names a WAL file {name[:40]!r}: not a WAL segment name"
            )
        compressed = wal_dir / f"{name}.gz"
        fetch(open_file, file, compressed, user, deadline)
        try:
            with gzip.open(compressed) as source, private_file(wal_dir / name, user) as sink:
                copied = 0
                while (chunk := source.read(CHUNK)) and copied <= MAX_WAL_SEGMENT:
                    sink.write(chunk)
                    copied += len(chunk)
            if copied > MAX_WAL_SEGMENT:
                raise ClusterFailed(f"{name}: larger than a WAL segment can be")
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise ClusterFailed(f"{name}: not a gzip-compressed WAL file: {error}") from None
        compressed.unlink()
        last = name
        advance()
    return last


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def recover(
    source: RecoverySource,
    open_file: Opener,
    data_dir: Path,
    scratch: Path,
    *,
    install: Path,
    user: str | None,
    say: Callable[[str], object] = lambda _: None,
    advance: Callable[[], object] = lambda: None,
    deadline: float | None = None,
) -> RecoveredCluster:
    """A recovered, promoted cluster in `data_dir` (an empty private folder), left running.
    The downloads, the socket and the log go to `scratch` (private, the server's user's),
    which the caller removes with `data_dir`. The server is stopped on any failure."""
    base = source.base
    say(f"Downloading the {base.what} ({base.size} bytes)")
    tar_path = scratch / "base.tar.gz"
    fetch(open_file, base, tar_path, user, deadline)
    unpack_base_backup(tar_path, data_dir)
    tar_path.unlink()

    wal_dir = private_folder(scratch / "wal", user)
    last_wal = fetch_wal(open_file, source.wal, wal_dir, user, advance, deadline)

    cluster = RecoveredCluster(
        data_dir=data_dir, install=install, socket_dir=private_folder(scratch / "socket", user),
        port=free_port(), user=user, log_file=scratch / "recovery.log",
        major=source.server_major,
    )  # fmt: skip
    give_to(user, data_dir)
    target = source.target_time
    configure_recovery(cluster, wal_dir, _rfc3339(target) if target else None)
    with private_file(cluster.log_file, user):
        pass
    say("Replaying WAL" + (f" up to {_rfc3339(target)}" if target else ""))
    cluster.start()
    try:
        timeout = RECOVERY_TIMEOUT_SECONDS
        if deadline is not None:
            timeout = max(deadline - time.monotonic(), 1.0)
        cluster.wait_promoted(timeout)
        cluster.bootstrap_user(source.source_user)
        if target is None and last_wal is not None:
            check_replayed_to(cluster, last_wal)
    except BaseException:  # failed, stopped or Ctrl-C: no server left running on removed files
        cluster.stop()
        raise
    return cluster


def reached_at(cluster: RecoveredCluster) -> datetime | None:
    """The commit time replay reached, as the server logged it when recovery ended."""
    try:
        text = cluster.log_file.read_text(errors="replace")
    except OSError:
        return None
    found = _REACHED.findall(text)
    if not found:
        return None
    try:
        return datetime.fromisoformat(found[-1]).astimezone(UTC)
    except ValueError:
        return None


def database_owner(cluster: RecoveredCluster, superuser: str, database: str) -> str:
    """The role that owns `database` in the recovered cluster."""
    owner = cluster.run(
        "psql", "--no-psqlrc", "--tuples-only", "--no-align",
        f"--host={cluster.socket_dir}", f"--port={cluster.port}",
        f"--username={superuser}", "--dbname=template1",
        "--command=SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = "
        + "'" + database.replace("'", "''") + "'",
    ).strip()  # fmt: skip
    if not owner:
        raise ClusterFailed(f"the recovered cluster has no database {database!r}")
    return owner


def move_database(
    tools: PgTools,
    cluster: RecoveredCluster,
    superuser: str,
    database: str,
    target: Target,
    *,
    tables: Sequence[str] = (),
    schemas: Sequence[str] = (),
    clean: bool = True,
    on_progress: Callable[[int], object] | None = None,
    done: RestoreProgress | None = None,
    timeout: float | None = None,
) -> RestoreOutcome:
    """pg_dump of the recovered cluster's `database` as its superuser (the cluster is ours:
    every object is readable, whatever rights the source's role has), piped into
    pg_restore into `target` as the target URL's user, who owns what is created: the dump
    is never on disk. `tables`/`schemas` are pg_restore's -t/-n. RestoreFailed saying
    which side failed."""
    from pgbackups.postgres.dump import DUMP_FLAGS
    from pgbackups.postgres.restore import RestoreFailed, run_pg_restore

    with tempfile.TemporaryFile() as errors:
        dump = subprocess.Popen(
            [
                tools.program("pg_dump"), *DUMP_FLAGS,
                f"--host={cluster.socket_dir}", f"--port={cluster.port}",
                f"--username={superuser}", f"--dbname={database}",
            ],
            env=tools.environment() | cluster.client_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=errors, cwd="/",
        )  # fmt: skip
        assert dump.stdout is not None
        output = dump.stdout

        def feed(sink: IO[bytes]) -> None:
            shutil.copyfileobj(output, sink, CHUNK)

        failure: str | None = None
        try:
            outcome = run_pg_restore(
                tools, None, target, on_progress, feed=feed, tables=tables, schemas=schemas,
                done=done, clean=clean, timeout=timeout,
            )  # fmt: skip
        except RestoreFailed as error:
            failure = str(error)
        except BaseException:  # stopped: pg_dump must not outlive the move
            dump.kill()
            raise
        finally:
            output.close()  # pg_restore stopped reading: pg_dump must not wait on the pipe
            code = dump.wait()
        if code != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace").strip()
            raise RestoreFailed(f"pg_dump of the recovered cluster failed: {text}")
        if failure is not None:
            raise RestoreFailed(failure)
        return outcome


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
