"""Downloading a backup's archive from its presigned URL: streamed, hashed, checked.

The archive is written in chunks as it arrives (never held whole in memory)
to a hidden file next to the destination, which is renamed into place only
once its SHA-256 and size match what the API recorded; on any failure nothing
is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pgbackups_cli import client

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

CHUNK_SIZE = 1024 * 1024
TIMEOUT_SECONDS = 60


class DownloadFailed(Exception):
    pass


@dataclass(frozen=True)
class Archive:
    """What GET …/backups/{id}/archive answers."""

    download_url: str
    filename: str
    size: int | None
    sha256: str | None

    @classmethod
    def from_api(cls, link: dict[str, Any]) -> Archive:
        return cls(
            download_url=link["download_url"],
            filename=link["filename"],
            size=link.get("size"),
            sha256=link.get("sha256"),
        )


def destination_path(output: str | None, filename: str) -> Path:
    """`-o DIR` → DIR/<filename>; `-o FILE` → FILE; nothing → <filename> in the current folder."""
    if output is None:
        return Path(filename)
    path = Path(output).expanduser()
    if path.is_dir() or output.endswith(os.sep):
        return path / filename
    return path


def check_destination(output: str | None) -> None:
    """DownloadFailed now, before any download, if `-o` names a folder that does not exist."""
    folder = destination_path(output, "archive").parent
    if not folder.is_dir():
        raise DownloadFailed(f"no such directory: {folder}")


def _progress(console: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,  # a log file gets no bar at all
    )


def stream_archive(archive: Archive, sink: IO[bytes], console: Console) -> tuple[int, str]:
    """Copy the archive into `sink` chunk by chunk; its size and SHA-256 hex digest."""
    import urllib.error
    import urllib.request

    if not archive.download_url.startswith(("http://", "https://")):
        raise DownloadFailed("the API gave a download URL that is not http(s)")
    # A presigned URL carries its own signature: no Authorization header.
    request = urllib.request.Request(  # noqa: S310 (http(s), checked above)
        archive.download_url, headers={"User-Agent": client.user_agent()}
    )
    digest = hashlib.sha256()
    size = 0
    try:
        with client.urlopen(request, TIMEOUT_SECONDS) as response:
            total = archive.size
            if total is None:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            with _progress(console) as progress:
                task = progress.add_task(archive.filename, total=total)
                while chunk := response.read(CHUNK_SIZE):
                    digest.update(chunk)
                    sink.write(chunk)
                    size += len(chunk)
                    progress.advance(task, len(chunk))
    except urllib.error.HTTPError as error:
        raise DownloadFailed(
            f"the archive could not be downloaded: storage answered {error.code} {error.reason}"
            + (" (the link expired: try again)" if error.code == 403 else "")
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadFailed(f"the archive could not be downloaded: {reason}") from None
    return size, digest.hexdigest()


def check(archive: Archive, size: int, sha256: str) -> None:
    """DownloadFailed unless what arrived is what the API recorded."""
    if archive.size is not None and size != archive.size:
        raise DownloadFailed(
            f"the download is incomplete: {size} bytes received, {archive.size} expected"
        )
    if archive.sha256 is not None and sha256 != archive.sha256.lower():
        raise DownloadFailed(
            f"SHA-256 mismatch: the backup's is {archive.sha256}, the download's is {sha256}"
        )


def download_to_file(archive: Archive, path: Path, console: Console) -> None:
    """The archive at `path`, verified; nothing left behind on failure."""
    if not path.parent.is_dir():
        raise DownloadFailed(f"no such directory: {path.parent}")
    try:
        with _staging(path) as (staging, sink):
            size, sha256 = stream_archive(archive, sink, console)
            sink.flush()
            os.fsync(sink.fileno())
            sink.close()
            check(archive, size, sha256)
            os.replace(staging, path)
    except OSError as error:
        raise DownloadFailed(write_failure(error, path.parent)) from None


def write_failure(error: OSError, folder: Path) -> str:
    """What a failed write means for the user: nothing was kept, and what to do."""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device of {folder}: nothing was kept (free space first)"
    if error.errno == errno.EDQUOT:
        return f"disk quota exceeded in {folder}: nothing was kept"
    return f"could not write in {folder}: {error.strerror or error}: nothing was kept"


@contextlib.contextmanager
def _staging(path: Path) -> Iterator[tuple[Path, IO[bytes]]]:
    # Created 0600: a database's contents are nobody else's business.
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    staging = Path(name)
    sink = os.fdopen(descriptor, "wb")
    try:
        yield staging, sink
    finally:
        with contextlib.suppress(OSError):  # the disk may be full: closing flushes again
            sink.close()
        staging.unlink(missing_ok=True)
