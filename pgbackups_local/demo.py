"""`make demo`: the whole flow on this machine, checked end to end, in plain words.

Starts `pgbackups local --demo` as a subprocess (an embedded PostgreSQL with
sample data, registered as `demo`), then, through the HTTP API only as a user
would: takes a manual backup, waits for it, lists the backups, downloads the
archive through its presigned URL and checks its SHA-256, restores it with the
layer's pg_restore into a scratch database and compares the row count of every
table with the source; then asks the stack to restore the same backup where it is
(POST …/restores: streamed from S3 into pg_restore by the backup function) into a
second scratch database and compares it too. Stops the stack and exits 0, or
non-zero with the reason.

    python -m pgbackups_local.demo [--size-mb 100]
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from pgbackups.postgres.dump import RESTORE_FLAGS
from pgbackups.postgres.pgtools import PgTools
from pgbackups.postgres.restore import RestoreFailed, Target, run_pg_restore
from pgbackups_cli.client import ApiClient, ApiFailure
from pgbackups_cli.follow import StillRunning, wait_for_backup, wait_for_run
from pgbackups_cli.output import human_size
from pgbackups_cli.stack_file import StackFileError, read_stack_file, stack_file_path
from pgbackups_local.stack import StackError, pgtools_dir

DEFAULT_SIZE_MB = 100
STACK_START_TIMEOUT = 300.0
BACKUP_TIMEOUT = 300.0
STOP_TIMEOUT = 60.0
SCRATCH_DATABASE = "demo_restored"
# The cloud-side restore's target (POST …/restores).
STACK_SCRATCH_DATABASE = "demo_restored_by_stack"


class DemoFailed(Exception):
    """A step did not give what it should; the message says what happened."""


class Demo:
    def __init__(self, size_mb: int, work_dir: Path) -> None:
        self.size_mb = size_mb
        self.work_dir = work_dir
        self.state_dir = work_dir / "state"
        self.log_path = work_dir / "stack.log"
        self.tools = PgTools(pgtools_dir())
        self.process: subprocess.Popen[bytes] | None = None
        self.stack: dict[str, Any] = {}
        self._step = 0
        self._log_offset = 0

    # -- output -----------------------------------------------------------------------

    def step(self, text: str) -> None:
        self._step += 1
        click.echo(f"\n{self._step}. {text}")

    @staticmethod
    def say(text: str) -> None:
        click.echo(f"   {text}")

    # -- the stack ----------------------------------------------------------------------

    def start_stack(self) -> None:
        self.step(
            f"Starting the local stack with a {self.size_mb} MB demo database "
            "(moto as AWS, the HTTP API, the backup workers, an embedded PostgreSQL)…"
        )
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "pgbackups_local", "--demo",
                    "--demo-size-mb", str(self.size_mb), "--port", "0",
                    "--state-dir", str(self.state_dir),
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        stack_file = stack_file_path(self.state_dir)
        deadline = time.monotonic() + STACK_START_TIMEOUT
        while not stack_file.exists():
            self._relay_progress()
            if self.process.poll() is not None:
                raise DemoFailed(f"the local stack exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                raise DemoFailed(f"the local stack was not ready after {STACK_START_TIMEOUT:.0f} s")
            time.sleep(0.2)
        self._relay_progress()
        try:
            self.stack = read_stack_file(self.state_dir)
        except StackFileError as error:
            raise DemoFailed(str(error)) from None
        self.say(f"Ready in {time.monotonic() - started:.1f} s.")
        self.say(f"HTTP API  {self.stack['api_url']}  (bearer token in {stack_file})")
        self.say(
            f"AWS       {self.stack['aws_endpoint_url']}  (moto: bucket {self.stack['bucket']})"
        )

    def _relay_progress(self) -> None:
        """Echo the stack's own progress lines (`  … …`) as they appear in its log."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                chunk = log.read()
        except FileNotFoundError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._log_offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            if line.startswith("  … "):
                self.say(line.strip())

    def stop_stack(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise DemoFailed(f"the local stack did not stop within {STOP_TIMEOUT:.0f} s") from None
        if code != 0:
            raise DemoFailed(f"the local stack exited with code {code} when asked to stop")
        if stack_file_path(self.state_dir).exists():
            raise DemoFailed("the local stack stopped but left its stack.json behind")

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # -- the HTTP API -------------------------------------------------------------------

    def api(self, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        import requests

        response = requests.request(
            method,
            f"{self.stack['api_url']}{path}",
            headers={"Authorization": f"Bearer {self.stack['token']}"},
            timeout=60,
            **kwargs,
        )
        if response.status_code != expected:
            raise DemoFailed(
                f"{method} {path} answered {response.status_code} (expected {expected}): "
                f"{response.text[:500]}"
            )
        return response.json() if response.content else None

    # -- the flow ---------------------------------------------------------------------

    def run(self) -> None:
        self.start_stack()

        self.step("Listing the databases through the HTTP API…")
        databases = self.api("GET", "/v1/databases", 200)["databases"]
        demo = next((db for db in databases if db["name"] == "demo"), None)
        if demo is None:
            raise DemoFailed("the demo database is not registered")
        schedule = demo["schedule"]
        self.say(
            f"`demo` is registered: periodic backups daily at {schedule['hour']}:00 "
            f"{schedule['timezone']}, next at {schedule['next_run_at']}."
        )

        self.step("Asking for a manual backup of `demo` (POST /v1/databases/demo/backups)…")
        backup = self.api("POST", "/v1/databases/demo/backups", 202)
        self.say(f"Accepted: backup {backup['id']} is {backup['status']}.")

        self.step("Waiting while the backup function streams pg_dump into S3…")
        backup = self.wait_for(backup["id"])
        seconds = _seconds_between(backup["started_at"], backup["finished_at"])
        self.say(
            f"Done in {seconds:.1f} s: a {human_size(backup['size'])} archive ({backup['compression']}) "
            f"of a {human_size(backup['database_size'])} database; "
            f"pg_dump {backup['pg_dump_version']}, server {backup['server_version']}."
        )

        self.step("Listing the backups of `demo`…")
        page = self.api("GET", "/v1/databases/demo/backups", 200)
        self.say(f"{'ID':<28}{'CREATED AT':<22}{'METHOD':<10}{'SIZE':>10}  STATUS")
        for item in page["backups"]:
            size = human_size(item["size"]) if item["size"] is not None else "-"
            self.say(
                f"{item['id']:<28}{item['created_at'][:19].replace('T', ' '):<22}"
                f"{item['method']:<10}{size:>10}  {item['status']}"
            )

        self.step("Downloading the archive through its presigned S3 URL…")
        archive_path = self.download(backup)

        self.step(
            f"Restoring it with the layer's pg_restore into a scratch database ({SCRATCH_DATABASE})…"
        )
        self.restore(archive_path)

        self.step("Comparing the row count of every table, source and restored…")
        self.compare_row_counts(SCRATCH_DATABASE)

        self.step(
            "Restoring the same backup where it is (POST /v1/databases/demo/restores) into "
            f"another scratch database ({STACK_SCRATCH_DATABASE})…"
        )
        self.restore_by_stack(backup["id"])

        self.step("Comparing the row count of every table, source and restored by the stack…")
        self.compare_row_counts(STACK_SCRATCH_DATABASE)

        self.step("Stopping the local stack…")
        self.stop_stack()
        self.say("Stopped cleanly: servers down, ports freed, stack.json removed.")

    def wait_for(self, backup_id: str) -> dict[str, Any]:
        client = ApiClient(self.stack["api_url"], self.stack["token"])
        try:
            backup = wait_for_backup(
                client, "demo", backup_id, timeout=BACKUP_TIMEOUT, poll_seconds=0.5
            )
        except (StillRunning, ApiFailure) as error:
            raise DemoFailed(str(error)) from None
        if backup["status"] == "error":
            raise DemoFailed(f"the backup failed: {backup['error']}")
        return backup

    def download(self, backup: dict[str, Any]) -> Path:
        import requests

        link = self.api("GET", f"/v1/databases/demo/backups/{backup['id']}/archive", 200)
        path = self.work_dir / link["filename"]
        digest = hashlib.sha256()
        with requests.get(link["download_url"], stream=True, timeout=60) as response:
            if response.status_code != 200:
                raise DemoFailed(
                    f"the presigned URL answered {response.status_code}: {response.text[:300]}"
                )
            disposition = response.headers.get("Content-Disposition", "")
            with path.open("wb") as out:
                for chunk in response.iter_content(chunk_size=1024 * 1024):
                    digest.update(chunk)
                    out.write(chunk)
        size = path.stat().st_size
        if size != backup["size"] or size != link["size"]:
            raise DemoFailed(f"downloaded {size} bytes, the backup says {backup['size']}")
        if not digest.hexdigest() == link["sha256"] == backup["sha256"]:
            raise DemoFailed(
                f"SHA-256 mismatch: downloaded {digest.hexdigest()}, recorded {backup['sha256']}"
            )
        self.say(
            f"Saved {link['filename']} ({human_size(size)}); the URL expires at {link['expires_at']}."
        )
        self.say(f"Served as: {disposition}")
        self.say(f"SHA-256 matches the backup's record: {digest.hexdigest()}")
        return path

    def scratch_database(self, name: str) -> str:
        """A new empty database `name` beside the demo's; its URL."""
        with _connect(_with_database(self.stack["demo_database_url"], "postgres")) as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
        return _with_database(self.stack["demo_database_url"], name)

    def restore(self, archive: Path) -> None:
        scratch_url = self.scratch_database(SCRATCH_DATABASE)
        started = time.monotonic()
        try:
            run_pg_restore(self.tools, archive, Target.parse(scratch_url))
        except RestoreFailed as error:
            raise DemoFailed(str(error)) from None
        self.say(
            f"pg_restore {self.tools.version('pg_restore')} ({' '.join(RESTORE_FLAGS)}) "
            f"finished in {time.monotonic() - started:.1f} s without errors."
        )

    def restore_by_stack(self, backup_id: str) -> None:
        target_url = self.scratch_database(STACK_SCRATCH_DATABASE)
        body = {"backup_id": backup_id, "target_url": target_url}
        restore = self.api("POST", "/v1/databases/demo/restores", 202, json=body)
        self.say(
            f"Accepted: restore {restore['id']} into {restore['target']} is {restore['status']}."
        )
        client = ApiClient(self.stack["api_url"], self.stack["token"])
        path = f"/v1/databases/demo/restores/{restore['id']}"
        try:
            restore = wait_for_run(
                client, path, "restore", timeout=BACKUP_TIMEOUT, poll_seconds=0.5
            )
        except (StillRunning, ApiFailure) as error:
            raise DemoFailed(str(error)) from None
        if restore["status"] != "done":
            raise DemoFailed(f"the restore failed: {restore['error']}")
        progress = restore["progress"]
        self.say(
            f"Done on the {restore['runner']} runner in {restore['duration_seconds']:.1f} s: "
            f"{progress['restored']} of {progress['total']} archive entries restored, "
            "the archive's SHA-256 checked as it streamed."
        )
        for warning in restore["warnings"]:
            self.say(f"Warning: {warning}")

    def compare_row_counts(self, database: str) -> None:
        source = _row_counts(self.stack["demo_database_url"])
        restored = _row_counts(_with_database(self.stack["demo_database_url"], database))
        if not source:
            raise DemoFailed("the demo database has no tables")
        self.say(f"{'TABLE':<24}{'SOURCE':>12}{'RESTORED':>12}")
        for table in sorted(source.keys() | restored.keys()):
            mark = "" if source.get(table) == restored.get(table) else "   <- differs"
            self.say(f"{table:<24}{source.get(table, '-'):>12}{restored.get(table, '-'):>12}{mark}")
        if source != restored:
            raise DemoFailed("the restored row counts differ from the source")
        self.say(f"All {len(source)} tables match: {sum(source.values()):,} rows restored.")


def _seconds_between(start: str, end: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@contextmanager
def _connect(url: str) -> Iterator[Any]:
    import psycopg2

    connection = psycopg2.connect(url, connect_timeout=10)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


def _row_counts(url: str) -> dict[str, int]:
    from psycopg2 import sql

    with _connect(url) as cursor:
        cursor.execute(
            """
            SELECT n.nspname, c.relname FROM pg_class AS c
            JOIN pg_namespace AS n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema'
              AND n.nspname NOT LIKE 'pg\\_%'
            ORDER BY 1, 2
            """
        )
        tables = cursor.fetchall()
        counts = {}
        for schema, table in tables:
            cursor.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )
            name = table if schema == "public" else f"{schema}.{table}"
            counts[name] = int(cursor.fetchone()[0])
    return counts


@click.command()
@click.option(
    "--size-mb", type=click.IntRange(1, 10_000), default=DEFAULT_SIZE_MB, show_default=True,
    help="Approximate size of the demo database.",
)  # fmt: skip
def main(size_mb: int) -> None:
    """Run the whole pgbackups flow on the local stack and check every step."""
    click.echo("pgbackups demo: backups of a PostgreSQL database, on this machine only")
    click.echo("(moto stands in for AWS; the functions, the API and pg_dump are the real ones).")
    started = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="pgbackups-demo-"))
    demo: Demo | None = None
    failure: str | None = None
    try:
        demo = Demo(size_mb, work_dir)
        demo.run()
    except StackError as error:
        failure = str(error)
    except DemoFailed as error:
        failure = str(error)
    except KeyboardInterrupt:
        failure = "interrupted"
    except Exception as error:  # a bug or an unexpected answer: still stop the stack
        failure = f"{type(error).__name__}: {error}"
    finally:
        if demo is not None:
            try:
                demo.stop_stack()
            except DemoFailed as error:
                failure = failure or str(error)
    if failure is not None:
        click.echo(f"\nDemo failed: {failure}", err=True)
        if demo is not None and demo.log_path.exists():
            click.echo(f"Last lines of the local stack's log ({demo.log_path}):", err=True)
            click.echo(demo.log_tail(), err=True)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
        sys.exit(1)
    shutil.rmtree(work_dir, ignore_errors=True)
    click.echo(
        f"\nDemo complete in {time.monotonic() - started:.0f} s: backup, download, checksum, "
        "restore on this machine and restore by the stack all verified.\nRun `make local` to keep a stack running and try the API yourself."
    )


if __name__ == "__main__":
    main(prog_name="python -m pgbackups_local.demo")
