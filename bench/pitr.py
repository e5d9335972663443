"""`make bench`, continuous backups: the recovery point (RPO) and the restore time.

On a throwaway PostgreSQL 18 cluster of about 1 GB (the same reproducible data as
the backup bench) with moto as S3, continuous backups are enabled and captured
at the default interval while a steady write load runs (a commit every 0.2 s,
about 0.5 MB of WAL a second). For every commit, the lag is the time from the
commit until a capture run that archived its WAL had finished: its data is in
S3 from then on. Then a restore to a time in the middle of the load is timed:
downloading the base backup and WAL from S3, replaying, promotion.

    .venv/bin/python bench/pitr.py                   # 1 GB, 5 captures at 60 s
    .venv/bin/python bench/pitr.py --quick           # 50 MB, 3 captures at 10 s
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import database
import psycopg2
from contenders import FAKE_CREDENTIALS, AwsStack, MotoServer

from pgbackups.domain.models import BackupRequest, ConnectionInfo, DatabaseRecord, to_rfc3339
from pgbackups.domain.pitr import PitrSettings
from pgbackups.postgres.lsn import parse_lsn
from pgbackups.postgres.pgtools import PgTools
from pgbackups.settings import Settings
from pgbackups.usecases import pitr
from pgbackups.wiring import build_services
from pgbackups_cli.pitr import plan_pages, restore_cluster, server_binaries
from pgbackups_local.postgres import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_INTERVAL_SECONDS = 60  # the template's CaptureIntervalMinutes default
GOAL_WORST_RPO_SECONDS = 120


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


class WriteLoad:
    """A commit every `period` seconds; each remembers when it committed and its LSN."""

    def __init__(self, url: str, period: float = 0.2) -> None:
        self.url = url
        self.period = period
        self.commits: list[tuple[float, int]] = []  # (time.time(), commit LSN)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        connection = psycopg2.connect(self.url)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS load (id serial, body text)")
            while not self._stop.is_set():
                cursor.execute(
                    "INSERT INTO load (body) SELECT repeat(md5(random()::text), 30) "
                    "FROM generate_series(1, 60); SELECT pg_current_wal_insert_lsn()::text"
                )
                (lsn,) = cursor.fetchone()
                self.commits.append((time.time(), parse_lsn(lsn)))
                self._stop.wait(self.period)
        connection.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


class RequestsKept:
    """The backups' runner here: keeps the requests, which the bench then runs in-process
    as the backup function would (there is no Lambda on moto)."""

    name = "lambda"

    def __init__(self) -> None:
        self.requests: list[BackupRequest] = []

    def start(self, request: BackupRequest) -> None:
        self.requests.append(request)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke run")
    parser.add_argument("--interval", type=float, default=None, help="seconds between captures")
    parser.add_argument("--captures", type=int, default=None, help="capture runs under load")
    args = parser.parse_args()
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    size_mb = (50 if args.quick else 1000) * scale
    interval = args.interval or (10 if args.quick else DEFAULT_INTERVAL_SECONDS)
    captures = args.captures or (3 if args.quick else 5)
    label = "pitr-quick" if args.quick else "pitr"

    tools = PgTools(
        Path(os.environ.get("PGBACKUPS_PGTOOLS_DIR", ROOT / ".aws-sam/build/PgToolsLayer"))
    )
    work = Path(tempfile.mkdtemp(prefix="pgbackups-bench-pitr-"))
    work.chmod(0o755)
    moto = MotoServer(work / "moto.log")
    server = EmbeddedPostgres(name="bench-pitr").init(extra_conf="max_wal_size = 1GB\n").start()
    try:
        os.environ.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=moto.endpoint)
        aws = AwsStack(moto.endpoint, tools, work)
        settings = Settings(
            table_name=aws.names["TABLE_NAME"], bucket_name=aws.bucket,
            secret_prefix=aws.names["SECRET_PREFIX"], event_bus_name=aws.names["EVENT_BUS_NAME"],
            pgtools_dir=tools.root,
        )  # fmt: skip
        services = build_services(settings)
        url = server.create_database("bench")
        say(f"filling about {size_mb:.0f} MB")
        size = database.fill(url, int(size_mb * 1e6), say)
        services.catalog.create_database(DatabaseRecord(name="bench", created_at=datetime.now(UTC)))
        services.secrets.put("bench", ConnectionInfo(url=url))
        runner = RequestsKept()
        services.runner = runner
        pitr.enable_pitr(services, "bench", PitrSettings(enabled=True))

        (request,) = runner.requests  # enabling asked for the first base backup
        started = time.monotonic()
        taken = pitr.run_base_backup(services, request, seconds_left=900, runner="lambda")
        assert taken is not None and taken.base is not None, taken
        first = taken.base
        base_seconds = time.monotonic() - started
        pitr.capture(services, "bench", seconds_left=900)  # the WAL up to its end
        say(f"base backup of {size / 1e6:,.0f} MB in {base_seconds:.1f} s")

        load = WriteLoad(url)
        load.start()
        runs: list[tuple[float, int, float]] = []  # (finished, archived LSN, duration)
        next_run = time.monotonic() + interval
        for number in range(captures):
            time.sleep(max(next_run - time.monotonic(), 0))
            next_run += interval
            began = time.monotonic()
            pitr.capture(services, "bench", seconds_left=900)
            state = services.pitr.get_state("bench")
            assert state is not None and state.chain_id is not None
            chain = services.pitr.get_chain("bench", state.chain_id)
            runs.append((time.time(), chain.archived_lsn, time.monotonic() - began))
            say(f"capture {number + 1}/{captures}: {runs[-1][2]:.1f} s")
        load.stop()

        lags = []
        for committed, lsn in load.commits:
            done = next((finished for finished, archived, _ in runs if archived >= lsn), None)
            if done is not None:
                lags.append(done - committed)
        middle = datetime.fromtimestamp(load.commits[len(load.commits) // 2][0], UTC)

        say(f"restoring to {to_rfc3339(middle)}")
        plan_started = time.monotonic()

        def ask(cursor: str | None) -> dict[str, Any]:
            page = pitr.plan_restore(services, "bench", middle, cursor=cursor)
            return cast(
                dict[str, Any],
                json.loads(
                    json.dumps(
                        pitr.restore_links(services, page),
                        default=lambda v: to_rfc3339(v) if isinstance(v, datetime) else v,
                    )
                ),
            )

        pages = plan_pages(ask)
        plan = next(pages)
        install = server_binaries(18)
        cluster = restore_cluster(
            plan, work / "restored", install=install, more=pages, progress=say
        )
        restore_seconds = time.monotonic() - plan_started
        cluster.stop()

        result: dict[str, Any] = {
            "label": label,
            "at": to_rfc3339(datetime.now(UTC)),
            "database_bytes": size,
            "capture_interval_seconds": interval,
            "captures": len(runs),
            "commits": len(load.commits),
            "commits_measured": len(lags),
            "rpo_median_seconds": round(statistics.median(lags), 1),
            "rpo_worst_seconds": round(max(lags), 1),
            "capture_seconds_median": round(statistics.median(r[2] for r in runs), 2),
            "base_backup_seconds": round(base_seconds, 1),
            "base_backup_bytes": first.size,
            "restore_seconds": round(restore_seconds, 1),
            "wal_files_restored": plan["wal_total"],
        }
        goal = "met" if result["rpo_worst_seconds"] <= GOAL_WORST_RPO_SECONDS else "missed"
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{label}.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / f"{label}.md").write_text(
            "# make bench: continuous backups\n\n"
            f"{result['at']} · database {size / 1e6:,.0f} MB · capture every {interval:.0f} s · "
            f"{len(load.commits)} commits (one every 0.2 s) over {len(runs)} captures\n\n"
            "| figure | value |\n|---|---:|\n"
            f"| RPO median (commit → its WAL in S3) | {result['rpo_median_seconds']} s |\n"
            f"| RPO worst | {result['rpo_worst_seconds']} s (goal ≤ {GOAL_WORST_RPO_SECONDS} s: {goal}) |\n"
            f"| capture run (median) | {result['capture_seconds_median']} s |\n"
            f"| base backup ({first.size / 1e6:,.0f} MB gzip) | {result['base_backup_seconds']} s |\n"
            f"| restore to a point in time (download, replay {len(plan['wal'])} WAL files, promote) | {result['restore_seconds']} s |\n"
        )
        say(json.dumps(result))
        return 0
    finally:
        server.destroy()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
