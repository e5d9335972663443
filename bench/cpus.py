"""Item 6 of `make bench`: the throughput at Lambda's CPU sizes, 1 and 2 vCPUs.

The bench pins itself to the first N CPUs (`sched_setaffinity`, what `taskset`
does) around each run, so every process a contender starts (pg_dump, the
backup function's process, aws) inherits the pin. PostgreSQL and moto_server
were started unpinned: they stand for the database server and S3, which are
elsewhere in AWS. 1 vCPU is Lambda at 1,769 MB (the template's default), 2
vCPUs at 3,538 MB.

For each CPU count: the database MB/s end to end of pg_dump alone (the limit)
and of pgbackups, their ratio, and the largest database that fits one Lambda
invocation: MB/s x (900 s - the 30 s kept to abort and record).
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterator
from typing import Any

from contenders import Dataset, Run

LAMBDA_SECONDS = 900
MARGIN_SECONDS = 30
# Lambda's CPU share grows with memory: one full vCPU at 1,769 MB.
MB_PER_VCPU = 1769


@contextlib.contextmanager
def pinned(cpus: int) -> Iterator[None]:
    """This process, and every process it starts meanwhile, on CPUs 0..cpus-1."""
    available = sorted(os.sched_getaffinity(0))
    if cpus > len(available):
        raise ValueError(f"{cpus} CPUs asked, {len(available)} available")
    os.sched_setaffinity(0, set(available[:cpus]))
    try:
        yield
    finally:
        os.sched_setaffinity(0, set(available))


def measure(
    dataset: Dataset,
    compression: str,
    contenders: list[Any],
    cpu_counts: list[int],
    repetitions: int,
    say: Any,
) -> list[Run]:
    runs: list[Run] = []
    for repetition in range(1, repetitions + 1):
        for cpus in cpu_counts:
            shift = (repetition - 1) % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                with pinned(cpus):
                    run = contender.run(dataset, compression, repetition)
                run.extra["cpus"] = cpus
                runs.append(run)
                say(
                    f"[{cpus} CPU {dataset.label} {compression} {repetition}/{repetitions}] "
                    f"{run.contender:<16} {run.wall_seconds:6.1f} s"
                )
    return runs


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r.extra["cpus"], r.contender) for r in runs})
    for cpus, contender in keys:
        group = [r for r in runs if r.extra["cpus"] == cpus and r.contender == contender]
        wall = statistics.median(r.wall_seconds for r in group)
        size = group[0].database_size
        rate = size / 1e6 / wall
        rows.append(
            {
                "cpus": cpus,
                "contender": contender,
                "database_size": size,
                "compression": group[0].compression,
                "wall_seconds_median": round(wall, 2),
                "database_mb_per_second": round(rate, 1),
                "fits_in_15_minutes_gb": round(rate * (LAMBDA_SECONDS - MARGIN_SECONDS) / 1000, 1),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "## At Lambda's CPU sizes: 1 and 2 vCPUs (item 6)",
        "",
        "pg_dump, the uploader and the backup process pinned to N CPUs (sched_setaffinity, "
        "as taskset); PostgreSQL and moto unpinned (they are elsewhere in AWS). Medians. "
        "Fits = DB MB/s x 870 s (Lambda's 900 s less the 30 s kept to abort and record).",
        "",
        "| CPUs (Lambda memory) | contender | wall s | DB MB/s | fits in 15 min | vs limit |",
        "|---|---|---:|---:|---:|---:|",
    ]
    limits = {row["cpus"]: row for row in rows if row["contender"] == "limit"}
    for row in rows:
        limit = limits.get(row["cpus"])
        ratio = row["wall_seconds_median"] / limit["wall_seconds_median"] if limit else None
        lines.append(
            f"| {row['cpus']} ({row['cpus'] * MB_PER_VCPU:,} MB) | {row['contender']} "
            f"| {row['wall_seconds_median']:.1f} | {row['database_mb_per_second']:.0f} "
            f"| {row['fits_in_15_minutes_gb']:.0f} GB | "
            + (f"{ratio:.2f} |" if ratio is not None else "|")
        )
    one_cpu = [r for r in rows if r["cpus"] == 1 and r["contender"] == "pgbackups"]
    if one_cpu and 1 in limits:
        ratio = one_cpu[0]["wall_seconds_median"] / limits[1]["wall_seconds_median"]
        lines += [
            "",
            f"Goal at 1 CPU: pgbackups within 1.3 x pg_dump alone: {ratio:.2f} "
            f"({'met' if ratio <= 1.3 else '**missed**'}).",
        ]
    return "\n".join(lines) + "\n"
