"""Item 7 of `make bench`: the time a user waits, from the API's trigger to the `done` record.

`pgbackups local` runs in a process of its own (the HTTP API, the async invoke
and the backup function, with moto in a child process, as a user starts it).
On the same database,
alternated round-robin in one run:

- pgbackups   POST /v1/databases/{db}/backups, then GET the backup every 0.1 s
              until it is `done`: the wall time a user (or `backups-create`) sees,
              and the backup's own phases from its `backup phases` log line;
- one-liner   `pg_dump <same flags> | aws s3 cp -` into the same moto;
- limit       pg_dump alone to /dev/null.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import requests
from contenders import (
    REGION,
    BenchError,
    Dataset,
    Limit,
    OneLiner,
    Run,
    _proc_cpu_seconds,
    write_aws_config,
)

from pgbackups.postgres.pgtools import PgTools

POLL_SECONDS = 0.1
PHASES = (
    "catalog",
    "secret",
    "probe",
    "dump stream",
    "upload completion",
    "event",
    "retention",
)


@dataclass
class LocalStackProcess:
    """`pgbackups local` as a user runs it, its log in a file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    info: dict[str, Any]
    state: Path

    @classmethod
    def start(
        cls, work: Path, *, name: str = "stack", parameters: tuple[str, ...] = ()
    ) -> LocalStackProcess:
        """`parameters`: template parameter overrides (`NAME=VALUE`, `--parameter`)."""
        state = work / f"{name}-state"
        log_path = work / f"{name}.log"
        program = Path(sys.executable).with_name("pgbackups")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        # Parts unsigned, as over https (contenders.AWS_CONFIG_AS_OVER_HTTPS); the one-liner too.
        env["AWS_CONFIG_FILE"] = str(write_aws_config(work / "stack-aws-config"))
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    str(program),
                    "local",
                    "--port",
                    "0",
                    "--state-dir",
                    str(state),
                    *(option for value in parameters for option in ("--parameter", value)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while not (state / "stack.json").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise BenchError(f"pgbackups local did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        return cls(process, log_path, json.loads((state / "stack.json").read_text()), state)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def api(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.info['token']}"
        return session

    def phases(self, backup_id: str, timeout: float = 30) -> dict[str, float]:
        """The backup's `backup phases` log line, written after its record says `done`
        (the event and the retention come after it): waited for."""
        deadline = time.monotonic() + timeout
        while True:
            for line in reversed(self.log_path.read_text(errors="replace").splitlines()):
                if '"backup phases"' in line and backup_id in line:
                    return dict(json.loads(line[line.index("{") :])["phases"])
            if time.monotonic() > deadline:
                raise BenchError(f"no `backup phases` log line for {backup_id}")
            time.sleep(0.1)


class StackStorage:
    """What OneLiner needs of an AWS stack, on the local stack's own moto."""

    def __init__(self, stack: LocalStackProcess) -> None:
        self.endpoint = stack.info["aws_endpoint_url"]
        self.bucket = stack.info["bucket"]
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=stack.info["region"],
            aws_access_key_id=stack.info["aws_access_key_id"],
            aws_secret_access_key=stack.info["aws_secret_access_key"],
        )

    def object_size(self, key: str) -> int:
        return int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    def object_header(self, key: str) -> bytes:
        return bytes(
            self.s3.get_object(Bucket=self.bucket, Key=key, Range="bytes=0-4")["Body"].read()
        )

    def empty_bucket(self) -> None:
        for obj in self.s3.list_objects_v2(Bucket=self.bucket, Prefix="one-liner/").get(
            "Contents", []
        ):
            self.s3.delete_object(Bucket=self.bucket, Key=obj["Key"])


class StackCpu:
    """moto runs in a child process of the stack (pgbackups_local.moto_process)."""

    def __init__(self, stack: LocalStackProcess) -> None:
        self.pid = _moto_child(stack.process.pid)

    def cpu_seconds(self) -> float:
        return _proc_cpu_seconds(self.pid)


def _moto_child(stack_pid: int) -> int:
    for task in Path(f"/proc/{stack_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"pgbackups_local.moto_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise BenchError("the local stack's moto process was not found")


class UserPath:
    """pgbackups as a user sees it: trigger over HTTP, poll until `done`."""

    name = "pgbackups (user)"

    def __init__(self, stack: LocalStackProcess) -> None:
        self.stack = stack
        self.api = stack.api()
        self.registered: set[str] = set()

    def register(self, dataset: Dataset, compression: str) -> str:
        name = f"{dataset.label}-{compression.replace(':', '')}".replace("_", "-")
        if name not in self.registered:
            answer = self.api.post(
                f"{self.stack.info['api_url']}/v1/databases",
                json={
                    "name": name,
                    "url": dataset.url,
                    "compression": compression,
                    "schedule": {"enabled": False},
                    "runner": "lambda",
                },
                timeout=60,
            )
            if answer.status_code != 201:
                raise BenchError(f"registering {name}: {answer.status_code} {answer.text}")
            self.registered.add(name)
        return name

    def run(self, dataset: Dataset, compression: str, repetition: int) -> Run:
        name = self.register(dataset, compression)
        base = f"{self.stack.info['api_url']}/v1/databases/{name}/backups"
        began = time.monotonic()
        answer = self.api.post(base, timeout=60)
        if answer.status_code != 202:
            raise BenchError(f"trigger: {answer.status_code} {answer.text}")
        backup_id = answer.json()["id"]
        polls = 0
        while True:
            backup = self.api.get(f"{base}/{backup_id}", timeout=60).json()
            polls += 1
            if backup["status"] in ("done", "error"):
                break
            time.sleep(POLL_SECONDS)
        wall = time.monotonic() - began
        if backup["status"] != "done":
            raise BenchError(f"the backup failed: {backup['error']}")
        started = _seconds_between(backup["created_at"], backup["started_at"])
        run_seconds = _seconds_between(backup["started_at"], backup["finished_at"])
        return Run(
            contender=self.name,
            dataset=dataset.label,
            database_size=dataset.size,
            compression=compression,
            repetition=repetition,
            wall_seconds=wall,
            output_bytes=backup["size"],
            backup_peak_rss_kib=None,
            pg_dump_peak_rss_kib=None,
            extra={
                "queued_seconds": started,
                "run_seconds": run_seconds,
                "polls": polls,
                "phases": self.stack.phases(backup_id),
            },
        )


def _seconds_between(start: str, end: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def measure(
    work: Path,
    tools: PgTools,
    aws: Path,
    dataset: Dataset,
    compression: str,
    repetitions: int,
    say: Any,
) -> list[Run]:
    stack = LocalStackProcess.start(work)
    try:
        storage = StackStorage(stack)
        cpu = StackCpu(stack)
        one_liner = OneLiner(tools, storage, cpu, aws)  # type: ignore[arg-type]
        one_liner.credentials.update(
            AWS_ACCESS_KEY_ID=stack.info["aws_access_key_id"],
            AWS_SECRET_ACCESS_KEY=stack.info["aws_secret_access_key"],
        )
        contenders: list[Any] = [Limit(tools, cpu), one_liner, UserPath(stack)]  # type: ignore[arg-type]
        runs: list[Run] = []
        for repetition in range(1, repetitions + 1):
            shift = (repetition - 1) % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                run = contender.run(dataset, compression, repetition)
                runs.append(run)
                say(
                    f"[user path {dataset.label} {compression} {repetition}/{repetitions}] "
                    f"{run.contender:<16} {run.wall_seconds:6.1f} s"
                    + (
                        f" (run {run.extra['run_seconds']:.1f} s)"
                        if "run_seconds" in run.extra
                        else ""
                    )
                )
        for contender in contenders:
            if isinstance(contender, OneLiner):
                contender.close()
        return runs
    finally:
        stack.stop()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def summarize(runs: list[Run]) -> dict[str, Any]:
    by: dict[str, list[Run]] = {}
    for run in runs:
        by.setdefault(run.contender, []).append(run)
    summary: dict[str, Any] = {
        name: {"wall_seconds": round(_median([r.wall_seconds for r in group]), 2)}
        for name, group in by.items()
    }
    ours = by.get(UserPath.name, [])
    if ours:
        summary[UserPath.name]["run_seconds"] = round(
            _median([r.extra["run_seconds"] for r in ours]), 2
        )
        summary[UserPath.name]["queued_seconds"] = round(
            _median([r.extra["queued_seconds"] for r in ours]), 2
        )
        summary[UserPath.name]["phases"] = {
            phase: round(_median([r.extra["phases"].get(phase, 0.0) for r in ours]), 3)
            for phase in PHASES
        }
    return summary


def markdown(summary: dict[str, Any], dataset: Dataset, compression: str) -> str:
    ours = summary.get(UserPath.name, {})
    one_liner = summary.get("one-liner", {}).get("wall_seconds")
    limit = summary.get("limit", {}).get("wall_seconds")
    wall = ours.get("wall_seconds")
    lines = [
        "## The user's path: API trigger to `done` (item 7)",
        "",
        f"`pgbackups local` in its own process (moto in a child process of its own), "
        f"{dataset.size / 1e6:,.0f} MB database, {compression}, medians; polling every "
        f"{POLL_SECONDS} s. The one-liner and the limit run against the same stack's moto, "
        "alternated round-robin; both uploaders send parts unsigned, as over https on AWS.",
        "",
        "| contender | wall s | vs one-liner | vs limit |",
        "|---|---:|---:|---:|",
    ]
    for name in ("limit", "one-liner", UserPath.name):
        if name in summary:
            value = summary[name]["wall_seconds"]
            lines.append(
                f"| {name} | {value:.2f} | {value / one_liner:.2f} | {value / limit:.2f} |"
                if one_liner and limit
                else f"| {name} | {value:.2f} | | |"
            )
    if ours:
        lines += [
            "",
            f"Backup's own run (`started_at` → `finished_at`): {ours['run_seconds']:.2f} s; "
            f"queued before it (`created_at` → `started_at`): {ours['queued_seconds']:.2f} s.",
            "",
            "| phase | seconds |",
            "|---|---:|",
            *(f"| {phase} | {seconds:.3f} |" for phase, seconds in ours["phases"].items()),
        ]
        if wall and one_liner and limit:
            lines += [
                "",
                f"Goals at 1 GB: ≤ 0.95 x the one-liner ({wall / one_liner:.2f}: "
                f"{'met' if wall <= 0.95 * one_liner else '**missed**'}), ≤ 1.5 x the limit "
                f"({wall / limit:.2f}: {'met' if wall <= 1.5 * limit else '**missed**'}).",
            ]
    return "\n".join(lines) + "\n"


__all__ = ["REGION", "LocalStackProcess", "markdown", "measure", "summarize"]
