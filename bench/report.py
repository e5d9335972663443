"""Figures from the bench's runs: medians per case, the targets, the Markdown table."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from contenders import Run

MB = 1e6  # sizes and throughput in MB (10^6 bytes); memory in MiB, as Lambda counts it
RSS_TARGET_MIB = 150
CONTENDER_ORDER = {"limit": 0, "one-liner": 1, "pgbackups": 2}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (dataset, compression, contender): medians, and maxima for peak RSS."""
    cases: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        if run.discarded:
            continue
        cases.setdefault((run.dataset, run.compression, run.contender), []).append(run)
    rows = []
    for (dataset, compression, contender), group in cases.items():
        walls = [r.wall_seconds for r in group]
        wall = statistics.median(walls)
        size = group[0].database_size
        outputs = [r.output_bytes for r in group if r.output_bytes]
        backup_rss = [r.backup_peak_rss_kib for r in group if r.backup_peak_rss_kib]
        dump_rss = [r.pg_dump_peak_rss_kib for r in group if r.pg_dump_peak_rss_kib]
        cpu_names = sorted({name for r in group for name in r.cpu_seconds})
        rows.append(
            {
                "dataset": dataset,
                "database_size": size,
                "compression": compression,
                "contender": contender,
                "runs": len(group),
                "wall_seconds_median": wall,
                "wall_seconds_all": walls,
                "database_mb_per_second": size / MB / wall,
                "output_bytes_median": _median([float(o) for o in outputs]),
                "compression_ratio": size / statistics.median(outputs) if outputs else None,
                "backup_peak_rss_mib_max": max(backup_rss) / 1024 if backup_rss else None,
                "pg_dump_peak_rss_mib_max": max(dump_rss) / 1024 if dump_rss else None,
                "cpu_seconds_median": {
                    name: _median([r.cpu_seconds[name] for r in group if name in r.cpu_seconds])
                    for name in cpu_names
                },
                "foreign_cpu_share_max": max(
                    (r.foreign_cpu_share for r in group if r.foreign_cpu_share is not None),
                    default=None,
                ),
                "machine_busy_median": _median(
                    [r.machine_busy for r in group if r.machine_busy is not None]
                ),
                "cold_start_seconds_median": _median(
                    [
                        r.extra["cold_start_seconds"]
                        for r in group
                        if "cold_start_seconds" in r.extra
                    ]
                ),
                "rss_after_cold_start_mib_max": max(
                    (
                        r.extra["rss_after_cold_start_kib"] / 1024
                        for r in group
                        if "rss_after_cold_start_kib" in r.extra
                    ),
                    default=None,
                ),
            }
        )

    def order(row: dict[str, Any]) -> tuple[int, str, int, str]:
        return (
            row["database_size"],
            row["compression"],
            CONTENDER_ORDER.get(row["contender"], 3),
            row["contender"],
        )

    return sorted(rows, key=order)


def _find(summary: list[dict[str, Any]], dataset: str, compression: str, contender: str) -> Any:
    for row in summary:
        if (row["dataset"], row["compression"], row["contender"]) == (
            dataset,
            compression,
            contender,
        ):
            return row
    return None


def evaluate_targets(
    summary: list[dict[str, Any]], default: str, datasets: list[str]
) -> list[dict[str, Any]]:
    """The project's targets for its default compression, on every dataset that has the figures."""
    targets: list[dict[str, Any]] = []

    def wall_target(dataset: str, name: str, reference: Any, threshold: float) -> None:
        engine = _find(summary, dataset, default, "pgbackups")
        if engine is None or reference is None:
            return
        ratio = engine["wall_seconds_median"] / reference["wall_seconds_median"]
        targets.append(
            {
                "dataset": dataset,
                "target": name,
                "value": engine["wall_seconds_median"],
                "reference": reference["wall_seconds_median"],
                "ratio": ratio,
                "threshold": threshold,
                "met": ratio <= threshold,
            }
        )

    for dataset in datasets:
        wall_target(
            dataset,
            f"wall ≤ 0.35 x one-liner with gzip ({default} vs gzip)",
            _find(summary, dataset, "gzip", "one-liner"),
            0.35,
        )
        wall_target(
            dataset,
            f"wall ≤ 0.95 x one-liner with {default}",
            _find(summary, dataset, default, "one-liner"),
            0.95,
        )
        wall_target(
            dataset,
            f"wall ≤ 1.5 x limit (pg_dump alone) with {default}",
            _find(summary, dataset, default, "limit"),
            1.5,
        )
        engine = _find(summary, dataset, default, "pgbackups")
        if engine is not None and engine["backup_peak_rss_mib_max"] is not None:
            rss = engine["backup_peak_rss_mib_max"]
            targets.append(
                {
                    "dataset": dataset,
                    "target": f"peak RSS of the backup process ≤ {RSS_TARGET_MIB} MiB",
                    "value": rss,
                    "reference": RSS_TARGET_MIB,
                    "ratio": rss / RSS_TARGET_MIB,
                    "threshold": 1.0,
                    "met": rss <= RSS_TARGET_MIB,
                }
            )
    return targets


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(document: dict[str, Any]) -> str:
    machine = document["machine"]
    upload = machine["upload"]
    lines = [
        "# make bench",
        "",
        f"{machine['date']} · {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB · Linux {machine['kernel']} · Python {machine['python']} · "
        f"pg_dump {machine['pg_dump']}, server {machine['postgres_server']} · "
        f"boto3 {machine['boto3']} · moto {machine['moto']} "
        f"(S3 endpoint, its own process) · {machine['awscli'].split(' ')[0]} · "
        f"upload: {upload['part_mib']:g} MiB parts, {upload['in_flight']} in flight, "
        f"{upload['buffers']} buffers",
        "",
        f"Median of {document['repetitions']} runs per row, contenders alternated round-robin. "
        "DB MB/s = pg_database_size / wall time. MB = 10^6 bytes, RSS in MiB (maximum over "
        "the runs). Backup process = `aws s3 cp` for the one-liner, the backup function's "
        "Python process for pgbackups; pg_dump is counted separately. CPU s = pg_dump / "
        "uploader / moto. Machine busy = share of both CPUs in use during the run; "
        "others' CPU = the largest share other processes of this shared machine used during "
        "a kept run (a run above 10% is measured again, up to 3 times).",
        "",
        "| database | compression | contender | wall s | DB MB/s | output MB | ratio "
        "| backup process peak RSS MiB | pg_dump peak RSS MiB | CPU s (dump/upload/moto) "
        "| machine busy | others' CPU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in document["summary"]:
        cpu = row["cpu_seconds_median"]
        cpu_text = " / ".join(
            _fmt(cpu.get(name), ".1f") for name in ("pg_dump", "uploader", "moto")
        )
        spread = f"{min(row['wall_seconds_all']):.1f}-{max(row['wall_seconds_all']):.1f}"
        lines.append(
            f"| {row['database_size'] / MB:,.0f} MB | {row['compression']} | {row['contender']} "
            f"| {row['wall_seconds_median']:.1f} ({spread}) "
            f"| {row['database_mb_per_second']:.1f} "
            f"| {_fmt(row['output_bytes_median'] and row['output_bytes_median'] / MB, ',.0f')} "
            f"| {_fmt(row['compression_ratio'], '.2f')} "
            f"| {_fmt(row['backup_peak_rss_mib_max'], '.0f')} "
            f"| {_fmt(row['pg_dump_peak_rss_mib_max'], '.0f')} "
            f"| {cpu_text} | {_fmt(row['machine_busy_median'] and 100 * row['machine_busy_median'], '.0f')}% "
            f"| {_fmt(row['foreign_cpu_share_max'] and 100 * row['foreign_cpu_share_max'], '.0f')}% |"
        )
    cold = [
        row["cold_start_seconds_median"]
        for row in document["summary"]
        if row["cold_start_seconds_median"] is not None
    ]
    if cold:
        lines += [
            "",
            "pgbackups' wall time is the handler's, `scheduled` → `done`; its process also "
            f"spent {statistics.median(cold):.1f} s importing (a Lambda cold start) before it, "
            "not counted. The one-liner's includes the aws CLI's start-up.",
        ]
    lines += [
        "",
        f"## Targets for the default compression ({document['default_compression']})",
        "",
        "| database | target | pgbackups | reference | ratio | threshold | result |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    sizes = {d["label"]: d["database_size"] for d in document["datasets"]}
    for target in document["targets"]:
        unit = " MiB" if "RSS" in target["target"] else " s"
        lines.append(
            f"| {sizes[target['dataset']] / MB:,.0f} MB | {target['target']} "
            f"| {target['value']:.1f}{unit} | {target['reference']:.1f}{unit} "
            f"| {target['ratio']:.2f} | {target['threshold']:g} "
            f"| {'met' if target['met'] else '**missed**'} |"
        )
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(text)
    os.replace(staging, path)
