"""The three ways of taking the same backup that `make bench` compares.

- `limit`: the layer's pg_dump with the backup's own flags, writing to /dev/null.
- `one-liner`: `pg_dump <same flags> | aws s3 cp - s3://bucket/key` in bash -o pipefail.
- `pgbackups`: the backup function's handler in a Python process of its own
  (bench/backup_once.py), from a `scheduled` record to `done`.

Every run returns a `Run` with its wall time, the archive's size and the peak
RSS and CPU time of each process involved, counted separately.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from pgbackups.adapters.catalog import Catalog
from pgbackups.adapters.secrets import ConnectionSecrets
from pgbackups.domain.models import BackupRecord, ConnectionInfo, DatabaseRecord, Schedule
from pgbackups.postgres.dump import DUMP_FLAGS, dump_command
from pgbackups.postgres.pgtools import PgTools
from pgbackups.postgres.urls import registered_connection, split_password
from pgbackups_local.postgres import free_port
from pgbackups_local.template import load_template, table_definition

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
REGION = "eu-west-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
TIME = "/usr/bin/time"
# Over https, with the CRC32 checksum in a header, botocore sends streamed parts
# unsigned: the function on Lambda and `aws s3 cp` never SHA-256 the bytes for the
# signature. moto listens on http, where botocore signs every part's payload
# unless told not to; both uploaders are told, so the bench does what AWS does.
AWS_CONFIG_AS_OVER_HTTPS = "[default]\ns3 =\n    payload_signing_enabled = false\n"


def write_aws_config(path: Path) -> Path:
    path.write_text(AWS_CONFIG_AS_OVER_HTTPS)
    return path


class BenchError(RuntimeError):
    """A contender failed: the benchmark stops rather than report a wrong figure."""


@dataclass
class Dataset:
    label: str  # "1gb"
    url: str
    size: int  # pg_database_size, bytes


@dataclass
class Run:
    contender: str
    dataset: str
    database_size: int
    compression: str
    repetition: int
    wall_seconds: float
    output_bytes: int | None
    backup_peak_rss_kib: int | None  # the uploading process: aws, or the backup function
    pg_dump_peak_rss_kib: int | None
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    machine_busy: float | None = None  # share of all CPUs busy during the run (0..1)
    foreign_cpu_share: float | None = None  # share of all CPUs used by processes not ours
    discarded: bool = False  # measured again: other processes took too much CPU
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


class MachineLoad:
    """How busy the machine's CPUs were between start() and stop()."""

    def __init__(self) -> None:
        self._start = _cpu_jiffies()

    def busy(self) -> float:
        busy, total = _cpu_jiffies()
        return (busy - self._start[0]) / max(total - self._start[1], 1)


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return 0


def _proc_tree_ticks(pid: int | str) -> int:
    """utime + stime + cutime + cstime: a process and every descendant it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15])


def _children(pid: int) -> set[str]:
    found: set[str] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found.update((task / "children").read_text().split())
    return found


class CpuLedger:
    """Whose CPU time a run used: the bench's processes, or others on a shared machine.

    Ours: this process and everything it reaped (pg_dump, bash, aws, the backup
    process), moto, and the cluster's postmaster with the backends it reaped.
    Foreign: the rest of the machine's busy time (another engineer's tests...).
    """

    def __init__(self, pids: list[int], postmaster: int) -> None:
        self._pids = ["self", *pids, postmaster]
        self._postmaster = postmaster
        self._children = _children(postmaster)
        self._began = time.monotonic()
        self._machine = _cpu_jiffies()[0]
        self._ours = self._ours_ticks()

    def _ours_ticks(self) -> int:
        total = 0
        for pid in self._pids:
            with contextlib.suppress(OSError):
                total += _proc_tree_ticks(pid)
        return total

    def foreign_share(self) -> float:
        """Foreign CPU time as a share of the machine's capacity since the ledger began."""
        # The dump's backend counts once the postmaster has reaped it.
        deadline = time.monotonic() + 5
        while _children(self._postmaster) - self._children and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - self._began
        ticks = os.sysconf("SC_CLK_TCK")
        machine = (_cpu_jiffies()[0] - self._machine) / ticks
        ours = (self._ours_ticks() - self._ours) / ticks
        capacity = elapsed * len(os.sched_getaffinity(0))
        return max(machine - ours, 0.0) / max(capacity, 1e-9)


def machine_busy_over(seconds: float) -> float:
    load = MachineLoad()
    time.sleep(seconds)
    return load.busy()


class MotoServer:
    """`moto_server` in a process of its own on 127.0.0.1, so its cost is not the backup's."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        program = Path(sys.executable).with_name("moto_server")
        argv = [str(program)] if program.exists() else [sys.executable, "-m", "moto.server"]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [*argv, "--host", "127.0.0.1", "--port", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FAKE_CREDENTIALS},
            start_new_session=True,  # Ctrl-C reaches the bench, which stops moto in order
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"moto_server exited: {log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=2).close()  # noqa: S310 (our own loopback server)
                return
            if time.monotonic() > deadline:
                raise BenchError("moto_server did not start within 30 s")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        return _proc_cpu_seconds(self.process.pid)

    def rss_kib(self) -> int:
        return _proc_status_kib(self.process.pid, "VmRSS")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class AwsStack:
    """The bucket, table, event bus and secrets the template declares, on moto."""

    def __init__(self, endpoint: str, tools: PgTools, work: Path) -> None:
        self.endpoint = endpoint
        self.tools = tools
        self.names = {
            "TABLE_NAME": "pgbackups-bench",
            "BUCKET_NAME": "pgbackups-bench",
            "SECRET_PREFIX": "pgbackups/bench",
            "EVENT_BUS_NAME": "pgbackups-bench",
        }
        session = boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 (moto's fake credentials)
            region_name=REGION,
        )
        self.s3 = session.client("s3", endpoint_url=endpoint)
        dynamodb = session.client("dynamodb", endpoint_url=endpoint)
        self.s3.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        dynamodb.create_table(**table_definition(load_template(), self.names["TABLE_NAME"]))
        session.client("events", endpoint_url=endpoint).create_event_bus(
            Name=self.names["EVENT_BUS_NAME"]
        )
        self.catalog = Catalog(dynamodb, self.names["TABLE_NAME"])
        self.secrets = ConnectionSecrets(
            session.client("secretsmanager", endpoint_url=endpoint), self.names["SECRET_PREFIX"]
        )
        self._registered: set[str] = set()
        self.aws_config = write_aws_config(work / "aws-config")

    @property
    def bucket(self) -> str:
        return self.names["BUCKET_NAME"]

    def function_environment(self) -> dict[str, str]:
        """What the backup function's template gives it, plus the moto endpoint."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **FAKE_CREDENTIALS,
            **self.names,
            "BACKUP_FUNCTION_NAME": "pgbackups-bench-backup",
            "PGTOOLS_DIR": str(self.tools.root),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_CONFIG_FILE": str(self.aws_config),
            "POWERTOOLS_SERVICE_NAME": "pgbackups",
            "POWERTOOLS_METRICS_NAMESPACE": "pgbackups",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def register(self, name: str, url: str, compression: str) -> None:
        """A registered database (catalog + secret), once per name."""
        if name in self._registered:
            return
        self.catalog.create_database(
            DatabaseRecord(
                name=name,
                compression=compression,
                schedule=Schedule(enabled=False),
                created_at=datetime.now(UTC),
            )
        )
        self.secrets.put(name, ConnectionInfo(url=url))
        self._registered.add(name)

    def object_size(self, key: str) -> int:
        return int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    def object_header(self, key: str) -> bytes:
        body = self.s3.get_object(Bucket=self.bucket, Key=key, Range="bytes=0-4")["Body"]
        return bytes(body.read())

    def empty_bucket(self) -> None:
        """Delete every object and abort every multipart upload: moto keeps them in memory."""
        for upload in self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []):
            self.s3.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                self.s3.delete_object(Bucket=self.bucket, Key=obj["Key"])


def _time_argv(output: Path) -> list[str]:
    """`/usr/bin/time` writing peak RSS (KiB), user and system seconds to `output`."""
    return [TIME, "--format=%M %U %S", f"--output={output}"]


def _read_time(output: Path) -> tuple[int, float, float]:
    rss, user, system = output.read_text().strip().splitlines()[-1].split()
    return int(rss), float(user), float(system)


def _wait_measured(process: subprocess.Popen[bytes]) -> tuple[int, Any]:
    """Wait for `process` with wait4: its exit code and its own rusage."""
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        process.wait()
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage


class Limit:
    """pg_dump alone to /dev/null: what no uploader can beat."""

    name = "limit"

    def __init__(self, tools: PgTools, moto: MotoServer) -> None:
        self.tools = tools
        self.moto = moto

    def run(self, dataset: Dataset, compression: str, repetition: int) -> Run:
        argv, env = dump_command(self.tools, registered_connection(dataset.url), compression)
        with tempfile.TemporaryDirectory(prefix="pgbackups-bench-time-") as timing:
            measured = Path(TIME).exists()
            timing_file = Path(timing) / "pg_dump"
            if measured:  # wait4's figure would count our own RSS too (vfork before exec)
                argv = [*_time_argv(timing_file), *argv]
            with tempfile.TemporaryFile() as stderr:
                load = MachineLoad()
                began = time.monotonic()
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    env=env,
                )
                code, usage = _wait_measured(process)
                wall = time.monotonic() - began
                busy = load.busy()
                if code != 0:
                    stderr.seek(0)
                    raise BenchError(f"pg_dump failed ({code}): {stderr.read().decode()[-2000:]}")
            if measured:
                rss, user, system = _read_time(timing_file)
            else:
                rss, user, system = usage.ru_maxrss, usage.ru_utime, usage.ru_stime
        return Run(
            contender=self.name,
            dataset=dataset.label,
            database_size=dataset.size,
            compression=compression,
            repetition=repetition,
            wall_seconds=wall,
            output_bytes=None,
            backup_peak_rss_kib=None,
            pg_dump_peak_rss_kib=rss,
            cpu_seconds={"pg_dump": user + system},
            machine_busy=busy,
        )


class OneLiner:
    """`pg_dump <flags> | aws s3 cp - s3://bucket/key`, as a user would type it."""

    name = "one-liner"

    def __init__(self, tools: PgTools, stack: AwsStack, moto: MotoServer, aws: Path) -> None:
        self.tools = tools
        self.stack = stack
        self.moto = moto
        self.aws = aws
        self.home = Path(tempfile.mkdtemp(prefix="pgbackups-bench-aws-"))
        write_aws_config(self.home / "config")
        # moto's fake ones; the local stack's moto takes only its own key.
        self.credentials = dict(FAKE_CREDENTIALS)

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def command(self, dataset: Dataset, compression: str, key: str, timing: Path | None) -> str:
        safe_url, _ = split_password(dataset.url)
        pg_dump = [
            self.tools.program("pg_dump"),
            *DUMP_FLAGS,
            f"--compress={compression}",
            f"--dbname={safe_url}",
        ]
        aws = [
            str(self.aws),
            "s3",
            "cp",
            "-",
            f"s3://{self.stack.bucket}/{key}",
            "--endpoint-url",
            self.stack.endpoint,
            "--only-show-errors",
        ]
        if timing is not None:
            pg_dump = [*_time_argv(timing / "pg_dump"), *pg_dump]
            aws = [*_time_argv(timing / "aws"), *aws]
        # The layer's libraries for pg_dump only, as an installed pg_dump would find its own.
        library_path = f"LD_LIBRARY_PATH={shlex.quote(str(self.tools.root / 'lib'))}"
        return f"{library_path} {shlex.join(pg_dump)} | {shlex.join(aws)}"

    def run(self, dataset: Dataset, compression: str, repetition: int) -> Run:
        key = f"one-liner/{dataset.label}-{compression}-{repetition}.pgsql"
        _, password = split_password(dataset.url)
        timing = Path(tempfile.mkdtemp(prefix="time-", dir=self.home))
        measured = Path(TIME).exists()
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),  # no ~/.aws of the user's: fake credentials only
            "AWS_CONFIG_FILE": str(self.home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "credentials"),
            **self.credentials,
            "PGPASSWORD": password or "",
            "PGCONNECT_TIMEOUT": "10",
            "LC_ALL": "C.UTF-8",
        }
        command = self.command(dataset, compression, key, timing if measured else None)
        with tempfile.TemporaryFile() as stderr:
            moto_cpu = self.moto.cpu_seconds()
            load = MachineLoad()
            began = time.monotonic()
            process = subprocess.Popen(
                ["bash", "-o", "pipefail", "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
            )
            code, usage = _wait_measured(process)
            wall = time.monotonic() - began
            busy = load.busy()
            moto_cpu = self.moto.cpu_seconds() - moto_cpu
            if code != 0:
                stderr.seek(0)
                raise BenchError(f"the one-liner failed ({code}): {stderr.read().decode()[-2000:]}")
        size = self.stack.object_size(key)
        if self.stack.object_header(key) != b"PGDMP":
            raise BenchError("the one-liner's object is not a custom-format archive")
        if measured:
            pg_rss, pg_user, pg_sys = _read_time(timing / "pg_dump")
            aws_rss, aws_user, aws_sys = _read_time(timing / "aws")
            cpu = {"pg_dump": pg_user + pg_sys, "uploader": aws_user + aws_sys}
        else:  # bash's rusage covers both: one figure for the pair
            pg_rss = aws_rss = usage.ru_maxrss
            cpu = {"pg_dump+uploader": usage.ru_utime + usage.ru_stime}
        cpu["moto"] = moto_cpu
        shutil.rmtree(timing, ignore_errors=True)
        self.stack.empty_bucket()
        return Run(
            contender=self.name,
            dataset=dataset.label,
            database_size=dataset.size,
            compression=compression,
            repetition=repetition,
            wall_seconds=wall,
            output_bytes=size,
            backup_peak_rss_kib=aws_rss,
            pg_dump_peak_rss_kib=pg_rss,
            cpu_seconds=cpu,
            machine_busy=busy,
            extra={"separate_rss": measured},
        )


class Pgbackups:
    """The backup function end to end, through its handler, in a process of its own."""

    def __init__(
        self,
        stack: AwsStack,
        moto: MotoServer,
        logs: Path,
        *,
        name: str = "pgbackups",
        transfer: str | None = None,
        pipe_kib: int | None = None,
    ) -> None:
        self.stack = stack
        self.moto = moto
        self.logs = logs
        self.name = name
        self.options: list[str] = []
        if transfer:
            self.options += ["--transfer", transfer]
        if pipe_kib:
            self.options += ["--pipe-kib", str(pipe_kib)]

    def run(self, dataset: Dataset, compression: str, repetition: int) -> Run:
        database = f"{dataset.label}-{compression.replace(':', '-')}"
        self.stack.register(database, dataset.url, compression)
        record = BackupRecord.new(database, "manual", datetime.now(UTC))
        self.stack.catalog.create_backup(record)
        result_path = self.logs / f"{record.id}.json"
        log_path = self.logs / f"{record.id}.log"
        moto_cpu = self.moto.cpu_seconds()
        load = MachineLoad()
        began = time.monotonic()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    str(BENCH / "backup_once.py"),
                    "--database",
                    database,
                    "--backup-id",
                    record.id,
                    "--result",
                    str(result_path),
                    *self.options,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.stack.function_environment(),
                cwd=ROOT,
            )
            try:
                code = process.wait()
            except BaseException:
                _stop(process)
                raise
        process_wall = time.monotonic() - began
        busy = load.busy()
        moto_cpu = self.moto.cpu_seconds() - moto_cpu
        if code != 0 or not result_path.exists():
            raise BenchError(f"the backup process failed ({code}): {log_path.read_text()[-3000:]}")
        figures = json.loads(result_path.read_text())
        finished = self.stack.catalog.get_backup(database, record.id)
        if finished.status != "done" or finished.size is None:
            raise BenchError(f"the backup ended {finished.status}: {finished.error}")
        if self.stack.object_size(finished.object_key) != finished.size:
            raise BenchError("the stored object's size differs from the record's")
        self.stack.empty_bucket()
        return Run(
            contender=self.name,
            dataset=dataset.label,
            database_size=dataset.size,
            compression=compression,
            repetition=repetition,
            wall_seconds=figures["wall_seconds"],
            output_bytes=finished.size,
            backup_peak_rss_kib=figures["peak_rss_kib"],
            pg_dump_peak_rss_kib=figures["pg_dump_peak_rss_kib"],
            cpu_seconds={
                "pg_dump": figures["pg_dump_cpu_user_seconds"]
                + figures["pg_dump_cpu_system_seconds"],
                "uploader": figures["cpu_user_seconds"] + figures["cpu_system_seconds"],
                "moto": moto_cpu,
            },
            machine_busy=busy,
            extra={
                "process_wall_seconds": process_wall,
                "cold_start_seconds": figures["cold_start_seconds"],
                "cold_start_cpu_seconds": figures["cold_start_cpu_seconds"],
                "rss_after_cold_start_kib": figures["rss_after_cold_start_kib"],
                "s3_seconds": figures["s3_seconds"],
                "s3_calls": figures["s3_calls"],
                "options": self.options,
            },
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM first, so the backup process kills its pg_dump and aborts its upload."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
