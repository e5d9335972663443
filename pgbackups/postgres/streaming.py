"""Streaming a program's stdout (pg_dump's, pg_basebackup's) into S3 while hashing it.

Nothing touches the disk: the program writes to a pipe, the upload reads parts
of it into memory and uploads them. `DumpStream` sits between the two and makes
every failure surface as an exception *before* the upload completes (a bad
header, a non-zero exit, the deadline), so the upload aborts the multipart
upload and no object is left behind.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

from pgbackups.postgres.pgtools import Launcher, launch

STDERR_LINES = 8


class DumpFailed(Exception):
    """pg_dump failed; the message is fit for a backup's `error` field."""


class UploadFailed(DumpFailed):
    """S3 refused the upload; the multipart upload was aborted."""


class DumpTimedOut(DumpFailed):
    def __init__(self) -> None:
        super().__init__("timed out")


class DumpStream(io.RawIOBase):
    """A program's stdout (pg_dump's, pg_basebackup's) as a readable stream that hashes
    and checks what passes.

    Raises DumpFailed from `read` when the output does not start with `magic`, on a
    non-zero exit once stdout is exhausted, or DumpTimedOut once `cancel()` was called.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        magic: bytes,
        not_magic: str,
        program: str,
        observe: Callable[[memoryview], None] | None = None,
    ) -> None:
        super().__init__()
        assert process.stdout is not None and process.stderr is not None
        self._process = process
        self._magic = magic
        self._not_magic = not_magic
        self._program = program
        self._observe = observe  # sees every chunk of the output, in order
        self._stdout: IO[bytes] = process.stdout
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.finished_at: float | None = None  # time.monotonic() at the end of the output
        self._header = b""
        self._cancelled = threading.Event()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._stderr_reader = threading.Thread(
            target=self._drain_stderr, args=(process.stderr,), daemon=True
        )
        self._stderr_reader.start()

    def _drain_stderr(self, stderr: IO[bytes]) -> None:
        for line in stderr:
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self._stderr_tail.append(text)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._cancelled.is_set():
            raise DumpTimedOut()
        count = self._stdout.readinto(view)  # type: ignore[attr-defined]
        if self._cancelled.is_set():
            raise DumpTimedOut()
        if not count:
            self.finished_at = time.monotonic()
            self._finish()
            return 0
        chunk = view[:count]
        if len(self._header) < len(self._magic):
            self._header += bytes(chunk[: len(self._magic) - len(self._header)])
            if not self._magic.startswith(self._header):
                self.kill()
                raise DumpFailed(self._not_magic)
        self.sha256.update(chunk)
        if self._observe is not None:
            self._observe(chunk)
        self.size += count
        return count

    def _finish(self) -> None:
        code = self._process.wait()
        self._stderr_reader.join(timeout=10)
        if self._cancelled.is_set():
            raise DumpTimedOut()
        if code != 0:
            reason = self.stderr_tail or f"{self._program} exited with code {code}"
            if code < 0:
                reason = f"{self._program} was killed by signal {-code}. {self.stderr_tail}".strip()
            raise DumpFailed(reason)
        if self._header != self._magic:
            raise DumpFailed(self._not_magic)

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def cancel(self) -> None:
        """Stop the dump: the next read raises DumpTimedOut."""
        self._cancelled.set()
        self.kill()

    def kill(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)

    def close(self) -> None:
        self.kill()
        self._process.wait()
        self._stdout.close()
        super().close()


@dataclass(frozen=True)
class StoredArchive:
    size: int
    sha256: str
    dump_seconds: float = 0.0  # from pg_dump's start to the last byte of its output


class ArchiveUploads(Protocol):
    """Where a streamed archive goes (S3: `pgbackups.ports.Archives` is one); declared
    here so that the PostgreSQL side knows no layer above it."""

    def upload_stream(
        self,
        key: str,
        stream: DumpStream,
        expected_size: int | None,
        progress: Callable[[int], None] | None,
    ) -> None: ...


def stream_to_s3(
    archives: ArchiveUploads,
    key: str,
    argv: Sequence[str],
    env: dict[str, str],
    *,
    seconds_left: float,
    launcher: Launcher = launch,
    expected_size: int | None = None,
    magic: bytes,
    not_magic: str,
    program: str,
    observe: Callable[[memoryview], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> StoredArchive:
    """Run a program that writes an archive to stdout (checked by its first bytes
    `magic`) and upload its stdout to `key`; stop it after `seconds_left`.

    On any failure the multipart upload is aborted, no object is left and the
    exception propagates (DumpFailed for the program's own failures). `expected_size`
    (bytes) sizes the upload's parts; `observe` sees each chunk of the output as it passes;
    `progress` is told the bytes in S3 so far as the parts arrive there.
    """
    began = time.monotonic()
    process = launcher(argv, env)
    stream = DumpStream(process, magic=magic, not_magic=not_magic, program=program, observe=observe)
    watchdog = threading.Timer(max(seconds_left, 0), stream.cancel)
    watchdog.daemon = True
    watchdog.start()
    try:
        archives.upload_stream(key, stream, expected_size, progress)
    except DumpFailed:
        raise
    except Exception as error:
        stream.kill()
        raise UploadFailed(f"upload to S3 failed: {error}") from error
    else:
        return StoredArchive(
            size=stream.size,
            sha256=stream.sha256.hexdigest(),
            dump_seconds=(stream.finished_at or time.monotonic()) - began,
        )
    finally:
        watchdog.cancel()
        stream.close()
