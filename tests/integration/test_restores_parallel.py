"""Restores on a Fargate task with several vCPUs: the archive downloaded to the task's
storage, checked against its SHA-256, then `pg_restore --jobs`; real PostgreSQL 18 and
15 targets, moto for AWS, the backup function's own services as the task has them.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgbackups.domain.models import BackupRequest
from pgbackups.domain.restores import RestoreRecord
from pgbackups.postgres.pgtools import PgTools
from pgbackups.usecases import restores
from pgbackups.usecases.restores import run_restore
from pgbackups_local.postgres import EmbeddedPostgres
from tests.conftest import AwsStack, LambdaContext
from tests.integration.test_restores import SOURCE_SQL, Stack, plain_dump, postgres15

pytestmark = pytest.mark.integration

__all__ = ["postgres15"]  # the module's fixture, shared

# Enough tables for two workers to share: each its own data and indexes.
MORE_TABLES = "\n".join(
    f"CREATE TABLE part_{n} (id int PRIMARY KEY, note text);"
    f"INSERT INTO part_{n} SELECT g, md5(g::text) FROM generate_series(1, {1000 * n}) g;"
    f"CREATE INDEX part_{n}_note ON part_{n} (note);"
    for n in range(1, 7)
)
TWO_VCPUS = 2048


@pytest.fixture
def stack(aws: AwsStack, lambda_context: LambdaContext) -> Stack:
    return Stack(aws, lambda_context)


@pytest.fixture
def task_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The task's storage (TMPDIR on Fargate): where the archive is downloaded."""
    storage = tmp_path / "task"
    storage.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(storage))
    yield storage


@pytest.fixture
def two_cpus() -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("a restore with two jobs needs a machine with two CPUs")


def on_fargate(stack: Stack, database: str, target_url: str) -> RestoreRecord:
    """POST …/restores, then the request run as the Fargate task with 2 vCPUs runs it."""
    status, body = stack.restore(database, backup_id="latest", target_url=target_url)
    assert status == 202, body
    (request,) = stack.requests
    stack.requests.clear()
    services = stack.backup.services
    services.settings = dataclasses.replace(services.settings, task_cpu_units=TWO_VCPUS)
    record = run_restore(services, BackupRequest.model_validate(request.model_dump()),
                         seconds_left=600, runner="fargate")  # fmt: skip
    assert record is not None
    return record


def restore_done_line(logs: io.StringIO) -> dict[str, Any]:
    (line,) = [json.loads(x) for x in logs.getvalue().splitlines() if '"restore done"' in x]
    return dict(line)


@pytest.mark.parametrize("major", [18, 15])
def test_two_jobs_restore_every_row_from_the_downloaded_archive(
    stack: Stack,
    postgres: EmbeddedPostgres,
    postgres15: EmbeddedPostgres,
    database_name: str,
    pgtools_dir: Path,
    task_storage: Path,
    logs: io.StringIO,
    two_cpus: None,
    major: int,
) -> None:
    server = postgres if major == 18 else postgres15
    source = server.create_database(database_name)
    server.psql(SOURCE_SQL + MORE_TABLES, database_name)
    stack.backed_up("shop", source)
    target = f"target_{database_name}"
    target_url = server.create_database(target)

    restore = on_fargate(stack, "shop", target_url)

    assert restore.status == "done", restore.error
    tools = PgTools(pgtools_dir)
    assert plain_dump(server, target, tools) == plain_dump(server, database_name, tools)
    assert server.psql("SELECT count(*) FROM part_6", target) == "6000"
    assert restore.progress.restored == restore.progress.total
    assert restore.progress.restored > 0
    if major == 15:  # every worker's session is refused transaction_timeout: one warning
        assert [w for w in restore.warnings if "transaction_timeout" in w] == restore.warnings
        assert len(restore.warnings) == 1
    else:
        assert restore.warnings == []
    done = restore_done_line(logs)
    assert (done["jobs"], done["streamed"]) == (2, False)
    assert set(done["phases"]) == {"download", "table of contents", "pg_restore"}
    assert list(task_storage.iterdir()) == []  # the downloaded archive is removed
    assert stack.restore_secrets() == []


def test_a_tampered_archive_is_refused_before_pg_restore_runs(
    stack: Stack,
    source: str,
    postgres: EmbeddedPostgres,
    database_name: str,
    task_storage: Path,
    two_cpus: None,
) -> None:
    backup_id = stack.backed_up("shop", source)
    key = stack.backup.services.catalog.get_backup("shop", backup_id).object_key
    bucket = stack.aws.settings.bucket_name
    archive = bytearray(stack.aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    archive[len(archive) // 2] ^= 0xFF  # one byte changed, the PGDMP header intact
    stack.aws.s3.put_object(Bucket=bucket, Key=key, Body=bytes(archive))
    target = f"target_{database_name}"
    target_url = postgres.create_database(target)

    restore = on_fargate(stack, "shop", target_url)

    assert restore.status == "error"
    assert restore.error is not None and "does not match its recorded SHA-256" in restore.error
    # pg_restore never ran: the target is untouched, and the record does not call it partial.
    assert postgres.psql("SELECT count(*) FROM pg_class WHERE relname = 'items'", target) == "0"
    assert restore.warnings == []
    assert list(task_storage.iterdir()) == []
    assert stack.restore_secrets() == []


def test_an_archive_larger_than_the_task_storage_is_streamed_with_a_warning(
    stack: Stack,
    source: str,
    postgres: EmbeddedPostgres,
    database_name: str,
    task_storage: Path,
    logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
    two_cpus: None,
) -> None:
    stack.backed_up("shop", source)
    target = f"target_{database_name}"
    target_url = postgres.create_database(target)
    real_usage = restores.shutil.disk_usage

    def almost_full(path: Any) -> Any:
        usage = real_usage(path)
        return usage._replace(free=1024)

    monkeypatch.setattr(restores.shutil, "disk_usage", almost_full)

    restore = on_fargate(stack, "shop", target_url)

    assert restore.status == "done", restore.error
    assert postgres.psql("SELECT count(*) FROM orders", target) == "800"
    (warning,) = restore.warnings
    assert "larger than the task's free storage" in warning
    assert "FargateEphemeralStorageGiB" in warning
    done = restore_done_line(logs)
    assert (done["jobs"], done["streamed"]) == (1, True)
    assert list(task_storage.iterdir()) == []


@pytest.fixture
def source(postgres: EmbeddedPostgres, database_name: str) -> str:
    url = postgres.create_database(database_name)
    postgres.psql(SOURCE_SQL, database_name)
    return url


def test_a_failed_restore_keeps_the_warnings_gathered_before_it_failed(
    stack: Stack,
    source: str,
    postgres: EmbeddedPostgres,
    database_name: str,
    task_storage: Path,
    monkeypatch: pytest.MonkeyPatch,
    two_cpus: None,
) -> None:
    backup_id = stack.backed_up("shop", source)
    key = stack.backup.services.catalog.get_backup("shop", backup_id).object_key
    bucket = stack.aws.settings.bucket_name
    archive = bytearray(stack.aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    archive[len(archive) // 2] ^= 0xFF  # found out once it has streamed into pg_restore
    stack.aws.s3.put_object(Bucket=bucket, Key=key, Body=bytes(archive))
    target_url = postgres.create_database(f"target_{database_name}")
    real_usage = restores.shutil.disk_usage
    monkeypatch.setattr(
        restores.shutil, "disk_usage", lambda path: real_usage(path)._replace(free=1024)
    )

    restore = on_fargate(stack, "shop", target_url)

    assert restore.status == "error"
    assert [w for w in restore.warnings if "larger than the task's free storage" in w]
    assert [w for w in restore.warnings if "the target may be partial" in w]
    assert stack.restore_secrets() == []
