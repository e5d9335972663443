"""Item 8 of `make bench`: one dispatcher run over many databases due at the same hour.

N databases are registered in the catalog (moto_server in its own process, the
table the template declares), all scheduled at the same hour. One `dispatch`
then runs in this process, with the real adapters: the catalog on DynamoDB and
the Lambda runner's async Invoke, answered 202 by a small endpoint on
127.0.0.1 that counts the invocations (the backups themselves are not run).

Reported per N: the seconds until every database has its `scheduled` record and
its invocation, and the DynamoDB calls by operation (counted from botocore's
own events), so that linear growth shows as a constant number of calls per
database.

`make bench` runs it among the other items (`bench/run.py --items scale`); alone:

    .venv/bin/python bench/scale.py [--databases 250,1000] [--label scale]

starts its own moto_server and writes bench/results/<label>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
from contenders import MotoServer

from pgbackups.adapters.catalog import Catalog
from pgbackups.adapters.runners import LambdaRunner
from pgbackups.domain.models import DatabaseRecord, Schedule
from pgbackups.settings import Settings
from pgbackups.usecases.dispatch import SWEEP_THREADS, dispatch
from pgbackups.wiring import build_services
from pgbackups_local.template import load_template, table_definition

REGION = "eu-west-1"
HOUR = 3  # the hour every database shares (UTC)


class InvokeCounter:
    """The Invoke API's async shape (202), counting the calls per function."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        counter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with counter._lock:
                    counter.count += 1
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_dispatch(
    moto_endpoint: str, databases: int, say: Any, moto_cpu: Any = None
) -> dict[str, Any]:
    """`moto_cpu()`: moto_server's CPU seconds so far, to tell its share of the time."""
    suffix = uuid.uuid4().hex[:8]
    session = boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 (moto's fake credentials)
        region_name=REGION,
    )
    dynamodb = session.client("dynamodb", endpoint_url=moto_endpoint)
    table = f"pgbackups-scale-{suffix}"
    dynamodb.create_table(**table_definition(load_template(), table))
    catalog = Catalog(dynamodb, table)
    created = datetime.now(UTC)
    say(f"  registering {databases} databases due at {HOUR:02d}:00 UTC")
    for n in range(databases):
        catalog.create_database(
            DatabaseRecord(
                name=f"db{n:05d}",
                schedule=Schedule(hour=HOUR, timezone="UTC"),
                created_at=created,
            )
        )
    invokes = InvokeCounter()
    try:
        settings = Settings(
            table_name=table,
            bucket_name=f"pgbackups-scale-{suffix}",
            secret_prefix=f"pgbackups/scale-{suffix}",
            event_bus_name="default",
            backup_function_name="pgbackups-scale-backup",
            pgtools_dir=Path("/opt"),  # the dispatcher runs no pg_dump
        )
        services = build_services(settings, session)
        # Every client the dispatcher uses, on moto; the runner on the counting endpoint.
        services.catalog = Catalog(session.client("dynamodb", endpoint_url=moto_endpoint), table)
        services.runner = LambdaRunner(
            session.client("lambda", endpoint_url=invokes.url), settings.backup_function_name
        )
        calls: Counter[str] = Counter()
        services.catalog._db.meta.events.register(  # type: ignore[attr-defined]
            "before-call.dynamodb", lambda model, **_: calls.update([model.name])
        )
        at = datetime.now(UTC).replace(hour=HOUR, minute=0, second=0, microsecond=0)
        moto_before = moto_cpu() if moto_cpu else 0.0
        began = time.monotonic()
        report = dispatch(services, at)
        seconds = time.monotonic() - began
        moto_seconds = (moto_cpu() - moto_before) if moto_cpu else None
    finally:
        invokes.stop()
    scheduled = {record.database for record in report.scheduled}
    if len(scheduled) != databases or invokes.count != databases or report.failed:
        say(
            f"  dispatch scheduled {len(scheduled)} and invoked {invokes.count} of {databases} "
            f"databases ({len(report.failed)} failed)"
        )
    # Every record is really there, `scheduled`, and holds its database's lock.
    for record in report.scheduled[:: max(databases // 20, 1)]:
        stored = catalog.get_backup(record.database, record.id)
        assert stored.status == "scheduled"
        assert catalog.get_database(record.database).active_backup_id == record.id
    dynamodb.delete_table(TableName=table)
    total = sum(calls.values())
    return {
        "databases": databases,
        "seconds": round(seconds, 2),
        "moto_cpu_seconds": round(moto_seconds, 2) if moto_seconds is not None else None,
        "invocations": invokes.count,
        "scheduled": len(scheduled),
        "failed": len(report.failed),
        "dynamodb_calls": total,
        "dynamodb_calls_per_database": round(total / databases, 2),
        "dynamodb_calls_by_operation": dict(sorted(calls.items())),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "## Scale: one dispatcher run, every database due at the same hour (item 8)",
        "",
        "Databases registered in the catalog on moto_server; the dispatcher in one process "
        "with the real catalog and the Lambda runner's async Invoke (answered 202 on "
        "127.0.0.1). Time until every database has a `scheduled` record and an invocation. "
        "The run reads the catalog in one Scan, then sweeps the databases on "
        f"{SWEEP_THREADS} threads; each backup is created by two single-item writes "
        "(UpdateItem takes the lock and the day, PutItem the record). moto's Query "
        "and TransactWriteItems both cost a pass over the whole table, so the per-database "
        "queries and transaction used before made a run quadratic there.",
        "",
        "| databases | seconds | moto CPU s | per database ms | DynamoDB calls "
        "| calls per database | by operation | goal (< 60 s at 1,000) |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for result in results:
        by_operation = ", ".join(
            f"{name} {count}" for name, count in result["dynamodb_calls_by_operation"].items()
        )
        goal = ""
        if result["databases"] == 1000:
            goal = "met" if result["seconds"] < 60 else "**missed**"
        lines.append(
            f"| {result['databases']:,} | {result['seconds']:.1f} "
            f"| {result['moto_cpu_seconds'] if result['moto_cpu_seconds'] is not None else '-'} "
            f"| {1000 * result['seconds'] / result['databases']:.1f} "
            f"| {result['dynamodb_calls']:,} | {result['dynamodb_calls_per_database']:g} "
            f"| {by_operation} | {goal} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="250,1000", help="database counts, comma-separated")
    parser.add_argument("--label", default="scale", help="results file name in bench/results")
    args = parser.parse_args()
    results_dir = Path(__file__).resolve().parent / "results"

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="pgbackups-scale-") as work:
        moto = MotoServer(Path(work) / "moto.log")
        try:
            results = [
                run_dispatch(moto.endpoint, int(count), say, moto.cpu_seconds)
                for count in args.databases.split(",")
            ]
        finally:
            moto.stop()
    text = markdown(results)
    results_dir.mkdir(exist_ok=True)
    (results_dir / f"{args.label}.json").write_text(json.dumps(results, indent=2) + "\n")
    (results_dir / f"{args.label}.md").write_text(text)
    print(text)
    return 0 if all(r["failed"] == 0 and r["invocations"] == r["databases"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
