"""A Fargate run that starts PostgreSQL (a point-in-time restore, a drill) gets the server
of its major, on the local stack: the Fargate runner adds that major's server layer,
the stack's Lambda endpoint serves it like any other layer of the template, and the
task's bootstrap unpacks it where PGSERVER_DIRS points."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from ulid import ULID

from pgbackups.adapters.runners import FargateRunner
from pgbackups.domain.models import BackupRequest
from pgbackups.domain.runners import RunnerFailed
from pgbackups.postgres.servers import SHIPPED_MAJORS
from pgbackups_local.lambda_runtime import layer_version_arn
from pgbackups_local.stack import STAGE
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def client(stack: RunningStack, service: str) -> Any:
    """A client of the stack's own endpoint, signed with the owner's key (stack.json)."""
    info = stack.info
    return boto3.client(
        service,
        endpoint_url=info[f"{service}_endpoint_url"],
        region_name=info["region"],
        aws_access_key_id=info["aws_access_key_id"],
        aws_secret_access_key=info["aws_secret_access_key"],
    )


def fargate_runner(stack: RunningStack) -> FargateRunner:
    """The runner the API and the dispatcher build, with the template's server layers."""
    region = stack.info["region"]
    return FargateRunner(
        client(stack, "ecs"),
        client(stack, "lambda"),
        cluster=f"pgbackups-{STAGE}",
        task_definition=f"pgbackups-{STAGE}-backup",
        container="backup",
        subnets=("subnet-local",),
        security_groups=(),
        public_ip=False,
        function_name=stack.info["functions"]["BackupFunction"],
        server_layers={
            major: layer_version_arn(region, f"pgbackups-{STAGE}-pgserver{major}")
            for major in SHIPPED_MAJORS
        },
    )


def task_log(stack: RunningStack, started: float, timeout: float = 120) -> str:
    """The log of the task started after `started`, once it has stopped."""
    deadline = time.monotonic() + timeout
    while True:
        logs = [
            path for path in (stack.state_dir / "tasks").glob("*.log")
            if path.stat().st_mtime >= started
        ]  # fmt: skip
        if logs and "ECS task" in stack.log() and _stopped(stack, logs[0]):
            return logs[0].read_text(errors="replace")
        assert time.monotonic() < deadline, stack.log()[-3000:]
        time.sleep(0.5)


def _stopped(stack: RunningStack, log: Path) -> bool:
    return f"/{log.stem} stopped" in stack.log()


@pytest.mark.parametrize("major", [15, 18])
def test_a_run_with_a_server_major_unpacks_that_servers_layer_in_the_task(
    local_stack: RunningStack, major: int
) -> None:
    started = time.time()
    # No such backup: the task unpacks its code and layers, then has nothing to do.
    request = BackupRequest(
        database="no_such_db", backup_id=str(ULID()), kind="verify", server_major=major
    )
    fargate_runner(local_stack).start(request)
    log = task_log(local_stack, started)
    assert f"(servers: postgresql-{major})" in log, log


def test_a_major_without_a_server_layer_is_refused_before_any_task(
    local_stack: RunningStack,
) -> None:
    request = BackupRequest(
        database="no_such_db", backup_id=str(ULID()), kind="verify", server_major=13
    )
    with pytest.raises(RunnerFailed, match="no PostgreSQL 13 server"):
        fargate_runner(local_stack).start(request)
