"""`make bench`: backup throughput and memory, side by side, in one run.

Builds a reproducible database of about 1 GB in a throwaway PostgreSQL cluster
(the pinned binaries), starts `moto_server` on 127.0.0.1 as the S3 endpoint and
takes the same backup three ways, round-robin, for each compression:

- limit      the layer's pg_dump with the backup's own flags to /dev/null;
- one-liner  `pg_dump <same flags> | aws s3 cp - s3://...` (awscli in .venv-awscli);
- pgbackups  the backup function's handler, `scheduled` → `done`, in a process
             of its own so its peak RSS is the backup process's alone.

Then the project's default compression again on about 4 GB, to show that memory
does not grow with the database. Results go to bench/results/<label>.json and
.md; the targets for the default are printed as met or missed.

    make bench                            # 1 GB matrix + 4 GB default (the real thing)
    .venv/bin/python bench/run.py --quick # tiny sizes, a smoke run (label "quick")
    BENCH_SCALE=0.25 make bench           # every size times 0.25
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import contenders
import cpus
import database
import report
import rto
import scale
import user_path
from contenders import AwsStack, BenchError, Dataset, Limit, MotoServer, OneLiner, Pgbackups, Run

from pgbackups.adapters import archives
from pgbackups.domain.models import DEFAULT_COMPRESSION
from pgbackups.postgres.pgtools import PgTools, PgToolsNotFound, locate_pgtools
from pgbackups_local.postgres import EmbeddedPostgres
from pgbackups_local.stack import BUILT_LAYER

ROOT = contenders.ROOT
RESULTS = ROOT / "bench" / "results"
AWSCLI_VENV = ROOT / ".venv-awscli"
AWSCLI_VERSION = "1.46.2"
COMPRESSIONS = ("gzip", "zstd:1", "zstd:3", "lz4")
# throughput: the compression matrix (and the larger database); cpus: item 6 of
# issue 17, 1 and 2 CPUs; user-path: item 7, API trigger to `done`; scale: item 8;
# rto: issue 24's time to restore, per way and runner.
ITEMS = ("throughput", "cpus", "user-path", "scale", "rto")
# The cluster only serves dumps: no background vacuum, no checkpoint in the middle.
CLUSTER_CONF = (
    "autovacuum = off\nshared_buffers = 256MB\nmax_wal_size = 16GB\n"
    "checkpoint_timeout = 1h\nwork_mem = 64MB\nmaintenance_work_mem = 256MB\n"
)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _raise_interrupt(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


# -- setup ------------------------------------------------------------------------


def ensure_awscli() -> Path:
    """awscli in a venv of its own (its botocore pin clashes with the app's); idempotent."""
    aws = AWSCLI_VENV / "bin" / "aws"
    marker = AWSCLI_VENV / ".installed"
    if aws.exists() and marker.exists() and marker.read_text().strip() == AWSCLI_VERSION:
        return aws
    python = subprocess.run(
        [str(ROOT / "scripts" / "find-python")], capture_output=True, text=True, check=True
    ).stdout.strip()
    say(f"installing awscli=={AWSCLI_VERSION} into {AWSCLI_VENV.name} (once)")
    if not (AWSCLI_VENV / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(AWSCLI_VENV)], check=True)
    subprocess.run(
        [str(AWSCLI_VENV / "bin" / "pip"), "install", "--quiet", f"awscli=={AWSCLI_VERSION}"],
        check=True,
    )
    marker.write_text(AWSCLI_VERSION + "\n")
    return aws


def pgtools_dir() -> Path:
    try:
        return locate_pgtools(fallback=BUILT_LAYER, program="pg_dump").root
    except PgToolsNotFound as error:
        raise SystemExit(str(error)) from None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_facts(tools: PgTools, server: EmbeddedPostgres, aws: Path) -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    aws_version = subprocess.run(
        [str(aws), "--version"], capture_output=True, text=True, check=False
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pg_dump": tools.version("pg_dump"),
        "postgres_server": server.psql("SHOW server_version"),
        "boto3": _version("boto3"),
        "botocore": _version("botocore"),
        "moto": _version("moto"),
        "awscli": (aws_version.stdout or aws_version.stderr).strip(),
        "upload": {
            "part_mib": archives.MIN_PART_SIZE / 2**20,
            "in_flight": archives.MAX_CONCURRENCY,
            "buffers": archives.IN_MEMORY_PARTS,
        },
    }


@contextlib.contextmanager
def workplace() -> Iterator[Path]:
    """One temporary directory for everything the run starts, removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="pgbackups-bench-"))
    path.chmod(0o755)  # the cluster's unprivileged user must reach its own directory
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def build_dataset(
    server: EmbeddedPostgres, label: str, target: int, template: str | None
) -> Dataset:
    name = f"bench_{label}"
    if template:  # the larger database starts as a copy of the smaller one's rows
        server.psql(f'CREATE DATABASE "{name}" TEMPLATE "bench_{template}"')
    else:
        server.create_database(name)
    url = server.url(name)
    say(f"generating {label}: about {target / 1e6:,.0f} MB")
    began = time.monotonic()
    size = database.fill(url, target, say)
    say(f"  {label}: {size / 1e6:,.0f} MB in {time.monotonic() - began:.0f} s")
    return Dataset(label=label, url=url, size=size)


# -- measuring ----------------------------------------------------------------------


def rotations(items: list[Any], shift: int) -> list[Any]:
    shift %= len(items)
    return items[shift:] + items[:shift]


def wait_for_quiet(timeout: float, threshold: float = 0.15) -> float:
    """Wait (at most `timeout`) until the machine's CPUs are mostly idle; their busy share."""
    deadline = time.monotonic() + timeout
    busy = contenders.machine_busy_over(1.0)
    warned = False
    while busy > threshold and time.monotonic() < deadline:
        if not warned:
            say(f"  waiting for a quiet machine: its CPUs are {100 * busy:.0f}% busy")
            warned = True
        busy = contenders.machine_busy_over(2.0)
    return busy


def measure(
    dataset: Dataset,
    compressions: list[str],
    contenders_: list[Any],
    repetitions: int,
    runs: list[Run],
    *,
    ours: list[int],
    postmaster: int,
    retries: int,
    foreign_limit: float,
    quiet_timeout: float,
) -> None:
    """Round-robin: each repetition runs every compression and every contender once,
    the contenders' order rotating so none always goes first.

    The machine may be shared: a run waits for idle CPUs, and one during which
    other processes used more than `foreign_limit` of the CPUs is measured again
    (kept in the JSON as discarded), at most `retries` times.
    """
    for repetition in range(1, repetitions + 1):
        for index, compression in enumerate(compressions):
            for contender in rotations(contenders_, repetition - 1 + index):
                for attempt in range(retries + 1):
                    wait_for_quiet(quiet_timeout)
                    ledger = contenders.CpuLedger(ours, postmaster)
                    run = contender.run(dataset, compression, repetition)
                    run.foreign_cpu_share = ledger.foreign_share()
                    runs.append(run)
                    report_run(dataset, repetitions, run)
                    if run.foreign_cpu_share <= foreign_limit or attempt == retries:
                        break
                    run.discarded = True
                    say(
                        f"  again: other processes used {100 * run.foreign_cpu_share:.0f}% "
                        "of the CPUs during that run"
                    )


def report_run(dataset: Dataset, repetitions: int, run: Run) -> None:
    rss = (
        f", backup process {run.backup_peak_rss_kib / 1024:.0f} MiB"
        if run.backup_peak_rss_kib
        else ""
    )
    output = f", {run.output_bytes / 1e6:,.0f} MB" if run.output_bytes else ""
    say(
        f"[{dataset.label} {run.compression} {run.repetition}/{repetitions}] "
        f"{run.contender:<16} {run.wall_seconds:7.1f} s{output}{rss}, "
        f"pg_dump {(run.pg_dump_peak_rss_kib or 0) / 1024:.0f} MiB, "
        f"busy {100 * (run.machine_busy or 0):.0f}%, "
        f"foreign {100 * (run.foreign_cpu_share or 0):.0f}%"
    )


def warm_up(limit: Limit, dataset: Dataset) -> None:
    """One dump first, unmeasured: every measured run then reads from a warm page cache."""
    say(f"warming the cache with one dump of {dataset.label}")
    limit.run(dataset, "lz4", 0)


# -- main -----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="backup throughput and memory (make bench)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--size-mb", type=float, default=1000, help="the matrix's database")
    parser.add_argument("--large-size-mb", type=float, default=4000, help="the default's again")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--compressions", default=",".join(COMPRESSIONS))
    parser.add_argument("--no-large", action="store_true", help="skip the larger database")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=[transfer:PART_MIB:IN_FLIGHT:BUFFERS][,pipe:KIB]",
        help="also run pgbackups with other settings (an experiment; pgbackups is unchanged)",
    )
    parser.add_argument(
        "--items",
        default=",".join(ITEMS),
        help=f"what to measure, comma-separated among {', '.join(ITEMS)}",
    )
    parser.add_argument(
        "--scale-databases",
        default="250,1000",
        help="the database counts of the dispatcher's scale run",
    )
    parser.add_argument("--label", help="results file name (default: latest, or quick)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--foreign-limit",
        type=float,
        default=0.10,
        help="measure a run again when other processes used more than this share of the CPUs",
    )
    parser.add_argument("--retries", type=int, default=3, help="at most this many times")
    parser.add_argument(
        "--rto-drills-only",
        action="store_true",
        help="of the rto item, only the restore drills (a backup's, a point in time's)",
    )
    parser.add_argument(
        "--quiet-timeout", type=float, default=180, help="seconds to wait for idle CPUs"
    )
    args = parser.parse_args()
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    if args.quick:
        args.size_mb, args.large_size_mb = 48, 96
    args.size_mb *= scale
    args.large_size_mb *= scale
    args.label = args.label or ("quick" if args.quick or scale != 1 else "latest")
    args.items = [item for item in args.items.split(",") if item]
    unknown = set(args.items) - set(ITEMS)
    if unknown:
        parser.error(f"unknown items: {', '.join(sorted(unknown))}")
    if args.quick:
        args.scale_databases = "20,50"
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    return args


def size_label(megabytes: float) -> str:
    return (
        f"{megabytes / 1000:g}gb".replace(".", "_") if megabytes >= 1000 else f"{megabytes:.0f}mb"
    )


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    compressions = [c for c in args.compressions.split(",") if c]
    default = DEFAULT_COMPRESSION
    tools = PgTools(pgtools_dir())
    aws = ensure_awscli()
    runs: list[Run] = []
    extra: dict[str, Any] = {}
    sections: list[str] = []
    with workplace() as work, contextlib.ExitStack() as cleanup:
        say("starting a PostgreSQL cluster and moto_server on 127.0.0.1")
        server = EmbeddedPostgres(name="bench", base_dir=work)
        cleanup.callback(server.destroy)
        server.init(extra_conf=CLUSTER_CONF).start()
        moto = MotoServer(work / "moto.log")
        cleanup.callback(moto.stop)
        stack = AwsStack(moto.endpoint, tools, work)
        logs = work / "backups"
        logs.mkdir()
        limit = Limit(tools, moto)
        one_liner = OneLiner(tools, stack, moto, aws)
        cleanup.callback(one_liner.close)
        engines: list[Any] = [Pgbackups(stack, moto, logs)]
        for variant in args.variant:
            name, _, spec = variant.partition("=")
            options = dict(option.split(":", 1) for option in spec.split(",") if option)
            engines.append(
                Pgbackups(
                    stack,
                    moto,
                    logs,
                    name=f"pgbackups[{name}]",
                    transfer=options.get("transfer"),
                    pipe_kib=int(options["pipe"]) if "pipe" in options else None,
                )
            )
        facts = machine_facts(tools, server, aws)
        say(json.dumps(facts))

        small = build_dataset(server, size_label(args.size_mb), int(args.size_mb * 1e6), None)
        warm_up(limit, small)
        gate = {
            "ours": [moto.process.pid],
            "postmaster": postmaster_pid(server),
            "retries": args.retries,
            "foreign_limit": args.foreign_limit,
            "quiet_timeout": args.quiet_timeout,
        }
        if "throughput" in args.items:
            measure(
                small, compressions, [limit, one_liner, *engines], args.repetitions, runs, **gate
            )
        datasets = [small]
        if "cpus" in args.items:
            say("item 6: 1 and 2 CPUs")
            postmaster, moto_pid = postmaster_pid(server), moto.process.pid
            cpu_runs = cpus.measure(
                small,
                default,
                [limit, one_liner, engines[0]],
                [1, 2],
                args.repetitions,
                say,
                servers=lambda: cpus.server_processes(postmaster, moto_pid),
            )
            extra["cpus"] = cpus.summarize(cpu_runs)
            sections.append(cpus.markdown(extra["cpus"]))
        if "user-path" in args.items:
            say("item 7: the user's path, API trigger to done")
            user_runs = user_path.measure(work, tools, aws, small, default, args.repetitions, say)
            extra["user_path"] = user_path.summarize(user_runs)
            extra["user_path_runs"] = [run.as_dict() for run in user_runs]
            sections.append(user_path.markdown(extra["user_path"], small, default))
        if "rto" in args.items:
            say("the time to restore (RTO), every way and runner")
            rto_runs, archive_bytes, not_measured = rto.measure(
                work,
                tools,
                aws,
                server,
                small,
                args.repetitions,
                say,
                postmaster_pid(server),
                drills_only=args.rto_drills_only,
            )
            extra["rto"] = rto.summarize(rto_runs, small, archive_bytes, not_measured)
            extra["rto_runs"] = [run.as_dict() for run in rto_runs]
            sections.append(rto.markdown(extra["rto"], args.repetitions))
        if "scale" in args.items:
            say("item 8: one dispatcher run over many databases")
            extra["scale"] = [
                scale.run_dispatch(moto.endpoint, int(count), say, moto.cpu_seconds)
                for count in args.scale_databases.split(",")
            ]
            sections.append(scale.markdown(extra["scale"]))
        if "throughput" in args.items and not args.no_large:
            large = build_dataset(
                server, size_label(args.large_size_mb), int(args.large_size_mb * 1e6), small.label
            )
            datasets.append(large)
            warm_up(limit, large)
            measure(large, [default], [limit, one_liner, *engines], args.repetitions, runs, **gate)
        facts["moto_rss_mib_at_end"] = round(moto.rss_kib() / 1024)

    summary = report.summarize(runs)
    targets = report.evaluate_targets(summary, default, [d.label for d in datasets])
    document = {
        "machine": facts,
        "default_compression": default,
        "datasets": [{"label": d.label, "database_size": d.size} for d in datasets],
        "repetitions": args.repetitions,
        "summary": summary,
        "targets": targets,
        "runs": [run.as_dict() for run in runs],
        **extra,
    }
    # The compression matrix's table only when it ran (`--items rto` prints its own alone).
    markdown = "\n".join([report.markdown(document)] * bool(runs) + sections)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report.write_atomically(RESULTS / f"{args.label}.json", json.dumps(document, indent=2) + "\n")
    report.write_atomically(RESULTS / f"{args.label}.md", markdown)
    print(markdown)
    say(f"written: {RESULTS / args.label}.json and .md")
    missed = [t for t in targets if t["met"] is False]
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        say(f"bench failed: {error}")
        sys.exit(2)
    except KeyboardInterrupt:
        say("interrupted: everything the bench started was stopped")
        sys.exit(130)
