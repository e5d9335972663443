"""Item 6 of `make bench`: the throughput at Lambda's CPU sizes, 1 and 2 vCPUs.

On Lambda the database server and S3 are elsewhere: the function's vCPUs run
only the backup (its Python process and its pg_dump). So around each run the
bench places the contender (this process, and every process it starts
meanwhile: pg_dump, the backup process, bash and aws) on the first N CPUs
(`sched_setaffinity`, what `taskset` does), and the server side (the
PostgreSQL cluster's processes and moto_server's threads) on the others; the
same for every contender. When the machine has no CPU left over (2 CPUs asked
of a 2-CPU machine), both sides share all of them, and the table says so: that
row measures the machine, not the backup alone. 1 vCPU is Lambda at 1,769 MB
(the template's default), 2 vCPUs at 3,538 MB.

For each CPU count: the database MB/s end to end of pg_dump alone (the limit)
and of pgbackups, their ratio, and the largest database that fits one Lambda
invocation: MB/s x (900 s - the 30 s kept to abort and record).
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contenders import Dataset, Run

LAMBDA_SECONDS = 900
MARGIN_SECONDS = 30
# Lambda's CPU share grows with memory: one full vCPU at 1,769 MB.
MB_PER_VCPU = 1769


def _tasks(pid: int) -> list[int]:
    """Every thread of `pid` (sched_setaffinity(pid) moves one thread only)."""
    with contextlib.suppress(OSError):
        return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    return []


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in _tasks(pid):
        with contextlib.suppress(OSError):
            found += [
                int(child)
                for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            ]
    return found


def server_processes(postmaster: int, moto: int) -> list[int]:
    """The server side: the cluster's postmaster and its children, and moto_server."""
    return [postmaster, *_children(postmaster), moto]


def _place(pids: list[int], cpus: set[int]) -> None:
    """Every thread of every process in `pids` on `cpus`; a process that just ended is skipped.

    Processes started later inherit the placement from their parent thread: the
    backends the postmaster forks for pg_dump, the threads moto starts per request.
    """
    for pid in pids:
        for task in _tasks(pid):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(task, cpus)


@contextlib.contextmanager
def placed(cpus: int, servers: list[int]) -> Iterator[bool]:
    """This process (and what it starts meanwhile) on CPUs 0..cpus-1, `servers` on the rest.

    Yields whether the two sides are apart; they share every CPU when none is left over.
    """
    available = sorted(os.sched_getaffinity(0))
    if cpus > len(available):
        raise ValueError(f"{cpus} CPUs asked, {len(available)} available")
    backup_cpus, server_cpus = set(available[:cpus]), set(available[cpus:])
    apart = bool(server_cpus)
    _place(servers, server_cpus if apart else set(available))
    os.sched_setaffinity(0, backup_cpus)
    try:
        yield apart
    finally:
        os.sched_setaffinity(0, set(available))
        _place(servers, set(available))


def measure(
    dataset: Dataset,
    compression: str,
    contenders: list[Any],
    cpu_counts: list[int],
    repetitions: int,
    say: Any,
    *,
    servers: Any,
) -> list[Run]:
    """`servers()` lists the server side's processes at the start of each run."""
    runs: list[Run] = []
    for repetition in range(1, repetitions + 1):
        for cpus in cpu_counts:
            shift = (repetition - 1) % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                with placed(cpus, servers()) as apart:
                    run = contender.run(dataset, compression, repetition)
                run.extra["cpus"] = cpus
                run.extra["servers_apart"] = apart
                runs.append(run)
                say(
                    f"[{cpus} CPU {dataset.label} {compression} {repetition}/{repetitions}] "
                    f"{run.contender:<16} {run.wall_seconds:6.1f} s"
                    + ("" if apart else " (servers on the same CPUs)")
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
                "servers_apart": all(r.extra.get("servers_apart") for r in group),
                "wall_seconds_median": round(wall, 2),
                "database_mb_per_second": round(rate, 1),
                "fits_in_15_minutes_gb": round(rate * (LAMBDA_SECONDS - MARGIN_SECONDS) / 1000, 1),
                "uploader_cpu_seconds_median": _median_cpu(group, "uploader"),
                "pg_dump_cpu_seconds_median": _median_cpu(group, "pg_dump"),
            }
        )
    return rows


def _own_cpu_ratio(row: dict[str, Any], limit: dict[str, Any]) -> float | None:
    """(pg_dump + uploader) CPU seconds over the limit's pg_dump CPU seconds."""
    dump, upload = row.get("pg_dump_cpu_seconds_median"), row.get("uploader_cpu_seconds_median")
    alone = limit.get("pg_dump_cpu_seconds_median")
    if dump is None or upload is None or not alone:
        return None
    return float((dump + upload) / alone)


def _median_cpu(group: list[Run], process: str) -> float | None:
    values = [r.cpu_seconds[process] for r in group if process in r.cpu_seconds]
    return round(statistics.median(values), 2) if values else None


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "## At Lambda's CPU sizes: 1 and 2 vCPUs (item 6)",
        "",
        "The contender (pg_dump, and the uploader: `aws` or the backup process) on N CPUs, "
        "PostgreSQL and moto on the others (sched_setaffinity, as taskset; on Lambda they "
        "are elsewhere); the same for every contender. Medians. Fits = DB MB/s x 870 s "
        "(Lambda's 900 s less the 30 s kept to abort and record). CPU s = pg_dump / uploader.",
        "",
        "| CPUs (Lambda memory) | contender | wall s | DB MB/s | fits in 15 min | vs limit "
        "| CPU s | servers |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    limits = {row["cpus"]: row for row in rows if row["contender"] == "limit"}
    for row in rows:
        limit = limits.get(row["cpus"])
        ratio = row["wall_seconds_median"] / limit["wall_seconds_median"] if limit else None
        cpu = " / ".join(
            "—" if row.get(key) is None else f"{row[key]:.1f}"
            for key in ("pg_dump_cpu_seconds_median", "uploader_cpu_seconds_median")
        )
        lines.append(
            f"| {row['cpus']} ({row['cpus'] * MB_PER_VCPU:,} MB) | {row['contender']} "
            f"| {row['wall_seconds_median']:.1f} | {row['database_mb_per_second']:.0f} "
            f"| {row['fits_in_15_minutes_gb']:.0f} GB | "
            + (f"{ratio:.2f}" if ratio is not None else "")
            + f" | {cpu} | "
            + ("other CPUs" if row.get("servers_apart") else "**same CPUs** (no CPU left)")
            + " |"
        )
    one_cpu = [r for r in rows if r["cpus"] == 1 and r["contender"] == "pgbackups"]
    if one_cpu and 1 in limits:
        ratio = one_cpu[0]["wall_seconds_median"] / limits[1]["wall_seconds_median"]
        lines += [
            "",
            f"Goal at 1 CPU: pgbackups within 1.3 x pg_dump alone: {ratio:.2f} "
            f"({'met' if ratio <= 1.3 else '**missed**'}).",
        ]
        own = _own_cpu_ratio(one_cpu[0], limits[1])
        if own is not None:
            lines += [
                "",
                "The backup's own CPU (what a vCPU of its own spends, whoever else is "
                "waited for): pg_dump + the backup process's CPU seconds / pg_dump's "
                f"alone = {own:.2f}"
                + "".join(
                    f"; the one-liner's {other:.2f}"
                    for row in rows
                    if row["cpus"] == 1 and row["contender"] == "one-liner"
                    for other in [_own_cpu_ratio(row, limits[1])]
                    if other is not None
                )
                + ".",
            ]
    if any(not row.get("servers_apart") for row in rows):
        lines += [
            "",
            "On this machine the 2-CPU rows share both CPUs with PostgreSQL and moto "
            "(moto reassembles every part in Python): they bound Lambda's figure from below.",
        ]
    return "\n".join(lines) + "\n"
