"""One backup through the backup function's handler, in a process of its own.

`bench/run.py` prepares the moto resources, registers the database and creates
a `scheduled` backup record, then runs this script with the function's
environment. It loads functions/backup.py as the Lambda runtime would (module
scope = cold start), calls `handler` once and writes its figures as JSON: the
wall time from `scheduled` to `done`, this process's peak RSS (the backup
process alone: moto and pg_dump are other processes) and pg_dump's peak RSS,
read from its /proc/<pid>/status VmHWM by a thread that polls this process's
children (RUSAGE_CHILDREN would count this process's own RSS: the child is
vforked before it execs pg_dump).

`--transfer PART_MIB:IN_FLIGHT:BUFFERS` swaps pgbackups.adapters.archives' part size,
parts uploading at once and part buffers, and `--pipe-kib N` the size of pg_dump's
stdout pipe (through the injectable launcher), for experiments only; pgbackups itself
is unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from pgbackups_local.functions import LambdaContext, load_handler_module

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def _vm_kib(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return 0


class ChildPeakRss(threading.Thread):
    """Polls the VmHWM (peak RSS since exec) of this process's pg_dump children."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kib = 0
        self._done = threading.Event()

    def _children(self) -> set[str]:
        pids: set[str] = set()
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError):
                pids.update((task / "children").read_text().split())
        return pids

    def run(self) -> None:
        while not self._done.is_set():
            for pid in self._children():
                with contextlib.suppress(OSError, ValueError):
                    status = Path(f"/proc/{pid}/status").read_text()
                    if "\nName:\tpg_dump" not in "\n" + status:
                        continue
                    for line in status.splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            self._done.wait(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak_kib


class S3CallTimes:
    """Time spent in each S3 operation, from botocore's own events (passive hooks).

    CompleteMultipartUpload is where moto concatenates every part in Python, a
    cost real S3 does not have in the backup's wall time at this scale.
    """

    def __init__(self, s3: Any) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._began: dict[int, float] = {}
        s3.meta.events.register("before-call.s3", self._before)
        s3.meta.events.register("after-call.s3", self._after)

    def _before(self, model: Any, context: Any, **kwargs: Any) -> None:
        self._began[id(context)] = time.monotonic()

    def _after(self, model: Any, context: Any, **kwargs: Any) -> None:
        began = self._began.pop(id(context), None)
        if began is not None:
            self.seconds[model.name] = self.seconds.get(model.name, 0.0) + time.monotonic() - began
            self.calls[model.name] = self.calls.get(model.name, 0) + 1


def _raise_interrupt(signum: int, frame: Any) -> NoReturn:
    # SIGTERM from the bench: unwind so stream_dump_to_s3 kills pg_dump and aborts.
    raise KeyboardInterrupt


def _patch_transfer(spec: str) -> None:
    """PART_MIB:IN_FLIGHT:BUFFERS in place of pgbackups.adapters.archives' settings."""
    import pgbackups.adapters.archives as archives

    part_mib, in_flight, buffers = (int(part) for part in spec.split(":"))
    archives.MIN_PART_SIZE = part_mib * MIB
    archives.MAX_CONCURRENCY = in_flight
    archives.IN_MEMORY_PARTS = buffers
    archives.UPLOAD_BUFFER_BUDGET = buffers * part_mib * MIB


def _pipe_launcher(kib: int) -> Any:
    """pgbackups.postgres.dump.launch, then pg_dump's stdout pipe enlarged (F_SETPIPE_SZ).

    With the default 64 KiB pipe, pg_dump stalls whenever the reading thread
    waits for the GIL; a larger pipe lets it run ahead.
    """
    import fcntl

    from pgbackups.postgres.pgtools import launch

    def launcher(argv: Any, env: dict[str, str]) -> Any:
        process = launch(argv, env)
        fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, kib * 1024)
        return process

    return launcher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--backup-id", required=True)
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--transfer")
    parser.add_argument("--pipe-kib", type=int)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _raise_interrupt)

    started = time.monotonic()
    if args.transfer:
        _patch_transfer(args.transfer)
    function = load_handler_module("backup")
    if args.pipe_kib:
        function.services.launcher = _pipe_launcher(args.pipe_kib)
    cold_start = time.monotonic() - started
    rss_after_cold_start = _vm_kib("VmRSS")

    s3_calls = S3CallTimes(function.services.archives._s3)
    pg_dump_rss = ChildPeakRss()
    pg_dump_rss.start()
    # The import (a cold start) is not the backup's: its CPU is reported apart.
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    answer = function.handler(
        {"database": args.database, "backup_id": args.backup_id},
        LambdaContext("pgbackups-bench-backup", timeout_seconds=900, memory_limit_in_mb=1024),
    )
    wall = time.monotonic() - began
    pg_dump_peak_kib = pg_dump_rss.stop()

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "answer": answer,
        "wall_seconds": wall,
        "cold_start_seconds": cold_start,
        "rss_after_cold_start_kib": rss_after_cold_start,
        "peak_rss_kib": own.ru_maxrss,
        "cpu_user_seconds": own.ru_utime - before.ru_utime,
        "cpu_system_seconds": own.ru_stime - before.ru_stime,
        "cold_start_cpu_seconds": before.ru_utime + before.ru_stime,
        "pg_dump_peak_rss_kib": pg_dump_peak_kib,
        "pg_dump_cpu_user_seconds": children.ru_utime,
        "pg_dump_cpu_system_seconds": children.ru_stime,
        "s3_seconds": s3_calls.seconds,
        "s3_calls": s3_calls.calls,
        "pid": os.getpid(),
    }
    args.result.write_text(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
