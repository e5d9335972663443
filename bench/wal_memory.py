"""The capture's peak memory against the server's WAL segment size (not a timed test).

For each segment size, a throwaway PostgreSQL 18 cluster is initdb'd with
`--wal-segsize`, continuous backups are enabled (moto as AWS, in its own process),
a bit more than one segment of WAL is written, and one capture run streams it: a
complete segment and the partial one. Each size runs in a child process of its own,
which reports its peak resident memory (ru_maxrss) before and after the capture.
The capture function has 1,024 MB; its memory must not grow with the segment size.

    .venv/bin/python bench/wal_memory.py                 # 16 and 256 MiB segments
    .venv/bin/python bench/wal_memory.py --sizes 16 64   # other sizes, in MiB
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(segment_mib: int) -> dict[str, Any]:
    """One size, in this process: the setup, then one capture run."""
    from contenders import FAKE_CREDENTIALS, AwsStack, MotoServer

    from pgbackups.domain.models import BackupRequest, ConnectionInfo, DatabaseRecord
    from pgbackups.domain.pitr import PitrSettings
    from pgbackups.postgres.pgtools import PgTools
    from pgbackups.settings import Settings
    from pgbackups.usecases import pitr
    from pgbackups.wiring import build_services
    from pgbackups_local.postgres import EmbeddedPostgres

    class SizedCluster(EmbeddedPostgres):
        """A cluster whose initdb sets the WAL segment size."""

        def run(self, *args: str, check: bool = True, input: str | None = None) -> str:
            if args[0] == "initdb":
                args = (*args, f"--wal-segsize={segment_mib}")
            return super().run(*args, check=check, input=input)

    class RequestsKept:
        name = "lambda"

        def __init__(self) -> None:
            self.requests: list[BackupRequest] = []

        def start(self, request: BackupRequest) -> None:
            self.requests.append(request)

    tools = PgTools(
        Path(os.environ.get("PGBACKUPS_PGTOOLS_DIR", ROOT / ".aws-sam/build/PgToolsLayer"))
    )
    work = Path(tempfile.mkdtemp(prefix="pgbackups-bench-wal-"))
    work.chmod(0o755)
    moto = MotoServer(work / "moto.log")
    wal_mib = max(4 * segment_mib, 64)
    server = SizedCluster(name="bench-wal").init(
        extra_conf=f"min_wal_size = {2 * wal_mib}MB\nmax_wal_size = {4 * wal_mib}MB\n"
    )
    server.start()
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
        services.catalog.create_database(DatabaseRecord(name="bench", created_at=datetime.now(UTC)))
        services.secrets.put("bench", ConnectionInfo(url=url))
        services.runner = RequestsKept()
        pitr.enable_pitr(services, "bench", PitrSettings(enabled=True))
        # A bit more than one segment of WAL (rows of random text), then commits.
        rows = segment_mib * 1024**2 * 5 // 4 // 300
        server.psql(
            "CREATE TABLE filler AS SELECT g, "
            "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 8)) AS pad "
            f"FROM generate_series(1, {rows}) g",
            "bench",
        )
        setup_peak = peak_rss_mib()
        report = pitr.capture(services, "bench", seconds_left=900)
        return {
            "segment_mib": segment_mib,
            "segments": report.segments,
            "partial": report.partial,
            "peak_rss_before_capture_mib": round(setup_peak),
            "peak_rss_mib": round(peak_rss_mib()),
        }
    finally:
        server.destroy()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 256], help="MiB")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child's size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return 0
    results = []
    for size in args.sizes:
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(size)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return 1
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print("\n| WAL segment size | segments captured | peak RSS of the capture |")
    print("|---|---|---|")
    for result in results:
        print(
            f"| {result['segment_mib']} MiB | {len(result['segments'])}"
            f"{' + partial' if result['partial'] else ''} | "
            f"{result['peak_rss_mib']} MiB (setup {result['peak_rss_before_capture_mib']} MiB) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
