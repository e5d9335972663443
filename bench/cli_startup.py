"""`make bench` (first part): how long `pgbackups --help` and `pgbackups backups` take to start.

Each command runs 10 times as a user runs it (the installed console script, a
fresh process each time); the median wall time is reported. `backups` talks to
a local stack started here (`pgbackups local --port 0`), so its figure is the
start-up plus one request to an API on this machine.

    .venv/bin/python bench/cli_startup.py [--pgbackups PATH] [--label NAME]

Results go to bench/results/cli-startup-<label>.json and .md (label: `latest`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pgbackups_cli.stack_file import read_stack_file, stack_file_path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RUNS = 10
GOAL_HELP_SECONDS = 0.3
START_TIMEOUT = 120.0


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 1):  # 1: an empty stack has no database to list
        raise SystemExit(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}")
    return elapsed


def median_of(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    timed(argv, env, cwd)  # warm the page cache, as a user's second run would be
    runs = [timed(argv, env, cwd) for _ in range(RUNS)]
    return {"median_s": round(statistics.median(runs), 3), "runs_s": [round(r, 3) for r in runs]}


@contextmanager
def local_stack(pgbackups: str, work: Path) -> Iterator[dict[str, Any]]:
    state = work / "state"
    with (work / "stack.log").open("wb") as log:
        process = subprocess.Popen(
            [pgbackups, "local", "--port", "0", "--state-dir", str(state)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=work,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not stack_file_path(state).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the local stack did not start: see {work / 'stack.log'}")
            time.sleep(0.2)
        yield read_stack_file(state)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pgbackups", default=str(Path(sys.executable).parent / "pgbackups"))
    parser.add_argument("--label", default="latest")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgbackups-bench-cli-") as folder:
        work = Path(folder)
        env = {
            name: value for name, value in os.environ.items() if not name.startswith("PGBACKUPS_")
        }
        env["PGBACKUPS_PGTOOLS_DIR"] = os.environ.get("PGBACKUPS_PGTOOLS_DIR", "")
        env["PGBACKUPS_CONFIG"] = str(work / "no-config.json")
        results: dict[str, Any] = {"pgbackups": args.pgbackups, "runs": RUNS}
        results["--help"] = median_of([args.pgbackups, "--help"], env, work)
        with local_stack(args.pgbackups, work) as stack:
            env.update(PGBACKUPS_API_URL=stack["api_url"], PGBACKUPS_TOKEN=stack["token"])
            results["backups"] = median_of([args.pgbackups, "backups"], env, work)
    help_s, backups_s = results["--help"]["median_s"], results["backups"]["median_s"]
    met = "met" if help_s <= GOAL_HELP_SECONDS else "missed"
    report = (
        f"# CLI start-up ({args.label})\n\n"
        f"Median of {RUNS} runs of the installed script, after one warm-up run.\n\n"
        "| command | median |\n| --- | ---: |\n"
        f"| `pgbackups --help` | {help_s:.3f} s |\n"
        f"| `pgbackups backups` (local stack, no database) | {backups_s:.3f} s |\n\n"
        f"Goal for `--help`: at most {GOAL_HELP_SECONDS} s ({met}).\n"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"cli-startup-{args.label}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"cli-startup-{args.label}.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
