"""Which runner takes a backup, and the RunTask request the Fargate runner sends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pgbackups.adapters.runners import (
    CODE_VARIABLE,
    MAX_OVERRIDES_BYTES,
    REQUEST_VARIABLE,
    FargateRunner,
)
from pgbackups.domain.models import BackupRecord, BackupRequest
from pgbackups.domain.runners import RunnerFailed, RunnerLimits, choose_runner

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
LIMITS = RunnerLimits(lambda_timeout_seconds=900, fargate_size_threshold_bytes=10 * 10**9)


def backup(
    minutes_ago: int,
    status: str = "done",
    *,
    seconds: float = 60,
    runner: str | None = "lambda",
    error: str | None = None,
    database_size: int = 10**9,
) -> BackupRecord:
    created = T0 - timedelta(minutes=minutes_ago)
    record = BackupRecord.new("shop", "periodic", created)
    return record.model_copy(
        update={
            "status": status,
            "started_at": created,
            "finished_at": created + timedelta(seconds=seconds),
            "runner": runner,
            "error": error,
            "database_size": database_size,
        }
    )


def test_explicit_settings_are_obeyed() -> None:
    slow = [backup(10, seconds=800)]
    assert choose_runner("lambda", slow, LIMITS)[0] == "lambda"
    assert choose_runner("fargate", [], LIMITS)[0] == "fargate"


def test_auto_starts_on_lambda() -> None:
    assert choose_runner("auto", [], LIMITS) == ("lambda", "the database's backups fit in Lambda")
    assert choose_runner("auto", [backup(10, seconds=449)], LIMITS)[0] == "lambda"


def test_auto_moves_to_fargate_past_half_of_the_lambda_limit() -> None:
    name, why = choose_runner("auto", [backup(10, seconds=451)], LIMITS)
    assert (name, why) == ("fargate", "the last backup took 451 s, over half of Lambda's limit")
    # A scheduled or running backup does not count; the last *finished* one does.
    running = backup(1, "running")
    assert choose_runner("auto", [running, backup(10, seconds=451)], LIMITS)[0] == "fargate"


def test_auto_moves_to_fargate_above_the_size_threshold() -> None:
    big = backup(10, seconds=30, database_size=10 * 10**9 + 1)
    assert choose_runner("auto", [big], LIMITS)[0] == "fargate"
    at_threshold = backup(10, seconds=30, database_size=10 * 10**9)
    assert choose_runner("auto", [at_threshold], LIMITS)[0] == "lambda"


def test_auto_moves_to_fargate_after_a_lambda_timeout() -> None:
    timed_out = backup(5, "error", runner="lambda", error="timed out")
    assert choose_runner("auto", [timed_out, backup(60)], LIMITS) == (
        "fargate",
        "the last backup timed out in Lambda",
    )
    reaped = backup(5, "error", runner="lambda", error="timed out: the lambda run stopped")
    assert choose_runner("auto", [reaped], LIMITS)[0] == "fargate"
    # Other failures, and a timeout on Fargate itself, do not move it.
    refused = backup(5, "error", error="cannot connect to shop")
    assert choose_runner("auto", [refused, backup(60)], LIMITS)[0] == "lambda"
    fargate_timeout = backup(5, "error", runner="fargate", error="timed out")
    assert choose_runner("auto", [fargate_timeout, backup(60)], LIMITS)[0] == "lambda"


def test_auto_stays_on_fargate_while_backups_are_long_there() -> None:
    on_fargate = backup(10, seconds=1200, runner="fargate")
    assert choose_runner("auto", [on_fargate], LIMITS)[0] == "fargate"
    # ...and comes back to Lambda once they are short again.
    quick = backup(10, seconds=100, runner="fargate")
    assert choose_runner("auto", [quick], LIMITS)[0] == "lambda"


def test_auto_without_a_fargate_runner_is_lambda() -> None:
    limits = RunnerLimits(900, 10 * 10**9, fargate_available=False)
    assert choose_runner("auto", [backup(10, seconds=800)], limits)[0] == "lambda"


# -- the RunTask request ---------------------------------------------------------

FUNCTION = "pgbackups-prod-BackupFunction-abc"
SHARED = "arn:aws:lambda:eu-west-1:123456789012:layer:pgbackups-prod-shared:7"
PGTOOLS = "arn:aws:lambda:eu-west-1:123456789012:layer:pgbackups-prod-pgtools:3"
CODE_URL = (
    "https://awslambda-eu-west-1-tasks.s3.eu-west-1.amazonaws.com/snapshots/fn?X-Amz-Signature=1"
)
SHARED_URL = (
    "https://awslambda-eu-west-1-layers.s3.eu-west-1.amazonaws.com/shared?X-Amz-Signature=2"
)
PGTOOLS_URL = (
    "https://awslambda-eu-west-1-layers.s3.eu-west-1.amazonaws.com/pgtools?X-Amz-Signature=3"
)
TASK_DEFINITION = "arn:aws:ecs:eu-west-1:123456789012:task-definition/pgbackups-prod-backup:4"
# CodeSha256 as Lambda answers it: base64 of the package's SHA-256.
DIGESTS = {
    CODE_URL: "Zm4tZGlnZXN0LW9mLXRoZS1mdW5jdGlvbi1wYWNrYWdlPQ==",
    SHARED_URL: "c2hhcmVkLWxheWVyLWRpZ2VzdA==",
    PGTOOLS_URL: "cGd0b29scy1sYXllci1kaWdlc3Q=",
}


def clients() -> tuple[Any, Any]:
    session = boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="y", region_name="eu-west-1"
    )
    return session.client("ecs"), session.client("lambda")


def fargate_runner(ecs: Any, lambda_client: Any, **overrides: Any) -> FargateRunner:
    settings: dict[str, Any] = {
        "cluster": "pgbackups-prod",
        "task_definition": TASK_DEFINITION,
        "container": "backup",
        "subnets": ("subnet-a", "subnet-b"),
        "security_groups": ("sg-db",),
        "public_ip": False,
        "function_name": FUNCTION,
    }
    return FargateRunner(ecs, lambda_client, **(settings | overrides))


def stub_code_locations(
    lambda_stub: Stubber, shared_url: str = SHARED_URL, pgtools_url: str = PGTOOLS_URL
) -> None:
    lambda_stub.add_response(
        "get_function",
        {
            "Configuration": {
                "FunctionName": FUNCTION,
                "CodeSha256": DIGESTS[CODE_URL],
                "Layers": [{"Arn": SHARED}, {"Arn": PGTOOLS}],
            },
            "Code": {"RepositoryType": "S3", "Location": CODE_URL},
        },
        {"FunctionName": FUNCTION},
    )
    for arn, url, digest in (
        (SHARED, shared_url, DIGESTS[SHARED_URL]),
        (PGTOOLS, pgtools_url, DIGESTS[PGTOOLS_URL]),
    ):
        lambda_stub.add_response(
            "get_layer_version_by_arn",
            {"LayerVersionArn": arn, "Content": {"Location": url, "CodeSha256": digest}},
            {"Arn": arn},
        )


def test_run_task_carries_the_cluster_task_definition_network_and_no_secret() -> None:
    ecs, lambda_client = clients()
    request = BackupRequest(database="shop", backup_id="01JBZ4X2Q6W8E0R1T2Y3V4M5N6")
    expected_code = {
        "function": {"location": CODE_URL, "sha256": DIGESTS[CODE_URL]},
        "layers": [
            {"location": SHARED_URL, "sha256": DIGESTS[SHARED_URL]},
            {"location": PGTOOLS_URL, "sha256": DIGESTS[PGTOOLS_URL]},
        ],
    }
    with Stubber(ecs) as ecs_stub, Stubber(lambda_client) as lambda_stub:
        stub_code_locations(lambda_stub)
        ecs_stub.add_response(
            "run_task",
            {
                "tasks": [{"taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/pgbackups-prod/1"}],
                "failures": [],
            },
            {
                "cluster": "pgbackups-prod",
                "taskDefinition": TASK_DEFINITION,
                "launchType": "FARGATE",
                "count": 1,
                "startedBy": "pgbackups-01JBZ4X2Q6W8E0R1T2Y3V4M5N6",
                "clientToken": "01JBZ4X2Q6W8E0R1T2Y3V4M5N6",
                "networkConfiguration": {
                    "awsvpcConfiguration": {
                        "subnets": ["subnet-a", "subnet-b"],
                        "securityGroups": ["sg-db"],
                        "assignPublicIp": "DISABLED",
                    }
                },
                "overrides": {
                    "containerOverrides": [
                        {
                            "name": "backup",
                            "environment": [
                                {"name": REQUEST_VARIABLE, "value": request.model_dump_json()},
                                {"name": CODE_VARIABLE, "value": json.dumps(expected_code)},
                            ],
                        }
                    ]
                },
            },
        )
        sent: list[dict[str, Any]] = []
        ecs.meta.events.register(
            "before-parameter-build.ecs.RunTask", lambda params, **_: sent.append(params)
        )
        fargate_runner(ecs, lambda_client).start(request)
        ecs_stub.assert_no_pending_responses()
        lambda_stub.assert_no_pending_responses()
    # The request as sent: the presigned code locations, but no URL, password or token.
    sent_text = json.dumps(sent).lower().replace('"clienttoken":', "")
    for secret_like in ("postgres://", "postgresql://", "password", "token", "secret"):
        assert secret_like not in sent_text, secret_like


def test_a_refused_run_task_raises_with_ecs_reason() -> None:
    ecs, lambda_client = clients()
    with Stubber(ecs) as ecs_stub, Stubber(lambda_client) as lambda_stub:
        stub_code_locations(lambda_stub)
        ecs_stub.add_response(
            "run_task", {"tasks": [], "failures": [{"arn": "subnet-a", "reason": "RESOURCE:ENI"}]}
        )
        with pytest.raises(RunnerFailed, match="RESOURCE:ENI"):
            fargate_runner(ecs, lambda_client, public_ip=True).start(
                BackupRequest(database="shop", backup_id="01JBZ4X2Q6W8E0R1T2Y3V4M5N6")
            )


def test_the_overrides_limit_counts_their_json_as_ecs_does() -> None:
    """Quotes in the request and the code JSON are escaped in the overrides' JSON: a
    request whose names and values fit 8 KiB can still be over ECS's limit."""
    ecs, lambda_client = clients()
    # Each `"` of the value is `\"` in the overrides' JSON.
    quoted = '"' * 3300
    with Stubber(ecs), Stubber(lambda_client) as lambda_stub:
        stub_code_locations(lambda_stub, shared_url=f"{SHARED_URL}&q={quoted}")
        with pytest.raises(RunnerFailed, match="8 KiB"):
            fargate_runner(ecs, lambda_client).start(
                BackupRequest(database="shop", backup_id="01JBZ4X2Q6W8E0R1T2Y3V4M5N6")
            )


# -- runs that start PostgreSQL: the server layer of their major --------------------------

SERVER_15 = "arn:aws:lambda:eu-west-1:123456789012:layer:pgbackups-prod-pgserver15:2"
SERVER_18 = "arn:aws:lambda:eu-west-1:123456789012:layer:pgbackups-prod-pgserver18:2"
SERVER_15_URL = (
    "https://awslambda-eu-west-1-layers.s3.eu-west-1.amazonaws.com/pgserver15?X-Amz-Signature=4"
)
SERVER_15_DIGEST = "cGdzZXJ2ZXIxNS1sYXllci1kaWdlc3Q="
DRILL_ID = "01JBZ4X2Q6W8E0R1T2Y3V4M5N7"


def started_code(runner: FargateRunner, ecs_stub: Stubber, request: BackupRequest) -> Any:
    """Start `request` and return the code JSON its task got."""
    sent: list[dict[str, Any]] = []
    ecs_stub.add_response(
        "run_task", {"tasks": [{"taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/c/1"}]}
    )
    runner._ecs.meta.events.register(
        "before-parameter-build.ecs.RunTask", lambda params, **_: sent.append(params)
    )
    runner.start(request)
    (environment,) = [c["environment"] for c in sent[0]["overrides"]["containerOverrides"]]
    return json.loads(next(e["value"] for e in environment if e["name"] == CODE_VARIABLE))


def test_a_run_that_starts_postgresql_gets_the_server_layer_of_its_major_last() -> None:
    ecs, lambda_client = clients()
    runner = fargate_runner(ecs, lambda_client, server_layers={15: SERVER_15, 18: SERVER_18})
    drill = BackupRequest(database="shop", backup_id=DRILL_ID, kind="verify", server_major=15)
    with Stubber(ecs) as ecs_stub, Stubber(lambda_client) as lambda_stub:
        stub_code_locations(lambda_stub)
        lambda_stub.add_response(
            "get_layer_version_by_arn",
            {"Content": {"Location": SERVER_15_URL, "CodeSha256": SERVER_15_DIGEST}},
            {"Arn": SERVER_15},
        )
        code = started_code(runner, ecs_stub, drill)
        lambda_stub.assert_no_pending_responses()
    assert code["layers"] == [
        {"location": SHARED_URL, "sha256": DIGESTS[SHARED_URL]},
        {"location": PGTOOLS_URL, "sha256": DIGESTS[PGTOOLS_URL]},
        {"location": SERVER_15_URL, "sha256": SERVER_15_DIGEST},
    ]


def test_a_backup_gets_no_server_layer() -> None:
    ecs, lambda_client = clients()
    runner = fargate_runner(ecs, lambda_client, server_layers={15: SERVER_15, 18: SERVER_18})
    with Stubber(ecs) as ecs_stub, Stubber(lambda_client) as lambda_stub:
        stub_code_locations(lambda_stub)
        code = started_code(runner, ecs_stub, BackupRequest(database="shop", backup_id=DRILL_ID))
    assert [layer["location"] for layer in code["layers"]] == [SHARED_URL, PGTOOLS_URL]


def test_a_major_without_a_server_layer_starts_nothing_and_says_which_are_deployed() -> None:
    ecs, lambda_client = clients()
    runner = fargate_runner(ecs, lambda_client, server_layers={15: SERVER_15, 18: SERVER_18})
    request = BackupRequest(database="shop", backup_id=DRILL_ID, kind="verify", server_major=14)
    # No response stubbed: any call to Lambda or ECS would fail the test.
    with Stubber(ecs) as ecs_stub, Stubber(lambda_client):
        with pytest.raises(RunnerFailed, match=r"PostgreSQL 14 .*deployed: 15, 18\)"):
            runner.start(request)
        ecs_stub.assert_no_pending_responses()


def presigned(bucket: str, key: str) -> str:
    """A location shaped like Lambda's answers (GetFunction's Code.Location,
    GetLayerVersionByArn's Content.Location), measured on real ones: about 1,500 to 1,700
    characters, most of it the URL-encoded session token of Lambda's own credentials.
    This one is 1,800, longer than any seen, with the `%2F` runs real tokens have."""
    token = "IQoJb3JpZ2luX2Vj" + "%2F" * 10 + "wEaCWV1LXdlc3QtMSJHMEUCIQ" + "Ab%2B9" * 208
    url = (
        f"https://prod-iad-c1-djusa-{bucket}.s3.eu-west-1.amazonaws.com/snapshots/"
        f"123456789012/{key}-91c7d184-f1ef-492c-883f-d0256b39128c"
        f"?versionId=gG3IUtMrRvQd0V8o8aigMdIWovvSFfhk&X-Amz-Security-Token={token}"
        "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261206T141400Z"
        "&X-Amz-SignedHeaders=host&X-Amz-Expires=600"
        "&X-Amz-Credential=ASIA25DCYHY3QCK55KEO%2F20261206%2Feu-west-1%2Fs3%2Faws4_request"
        "&X-Amz-Signature=" + "a9" * 32
    )
    assert 1750 <= len(url) <= 1850, len(url)
    return url


def test_the_server_layers_presigned_location_fits_in_run_tasks_overrides() -> None:
    """Four packages (the function, the shared and pgtools layers, a server layer) at
    realistic lengths, with the longest request, stay under ECS's 8 KiB."""
    ecs, lambda_client = clients()
    runner = fargate_runner(ecs, lambda_client, server_layers={18: SERVER_18})
    request = BackupRequest(database="d" * 63, backup_id=DRILL_ID, kind="verify", server_major=18)
    digest = "Rg+u4EXXP+oOnvXNgLjnm/ZH1fVbOfCjNa/k4Qy37XA="
    sent: list[dict[str, Any]] = []
    with Stubber(ecs) as ecs_stub, Stubber(lambda_client) as lambda_stub:
        lambda_stub.add_response(
            "get_function",
            {
                "Configuration": {
                    "FunctionName": FUNCTION,
                    "CodeSha256": digest,
                    "Layers": [{"Arn": SHARED}, {"Arn": PGTOOLS}],
                },
                "Code": {"RepositoryType": "S3", "Location": presigned("tasks", "backup")},
            },
        )
        for arn in (SHARED, PGTOOLS, SERVER_18):
            lambda_stub.add_response(
                "get_layer_version_by_arn",
                {
                    "Content": {
                        "Location": presigned("layers", arn.split(":")[-2]),
                        "CodeSha256": digest,
                    }
                },
                {"Arn": arn},
            )
        ecs_stub.add_response(
            "run_task", {"tasks": [{"taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/c/1"}]}
        )
        ecs.meta.events.register(
            "before-parameter-build.ecs.RunTask", lambda params, **_: sent.append(params)
        )
        runner.start(request)
    size = len(json.dumps(sent[0]["overrides"], separators=(",", ":")))
    # 7,831 bytes with these locations; real ones, 100 to 300 bytes shorter each, leave more.
    assert 7000 < size <= MAX_OVERRIDES_BYTES
