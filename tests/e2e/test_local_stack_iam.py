"""The local stack enforces template.yaml's IAM: each function can do what its policies
allow and nothing more, so a policy missing an action fails here as it would on AWS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from pgbackups_local.postgres import EmbeddedPostgres
from pgbackups_local.template import TEMPLATE
from tests.e2e.conftest import RunningStack, start_stack, wait_for_backup
from tests.e2e.test_local_stack import new_database, register

pytestmark = pytest.mark.e2e


def template_without(action: str, function: str, tmp_path: Path) -> Path:
    """A copy of template.yaml whose `function` no longer has `action` (its statement kept,
    with a read-only action instead)."""
    text = TEMPLATE.read_text()
    start = text.index(f"\n  {function}:\n")
    at = text.index(f"Action: {action}\n", start)
    copy = tmp_path / "template.yaml"
    copy.write_text(text[:at] + "Action: s3:GetObject\n" + text[at + len(f"Action: {action}\n") :])
    return copy


@pytest.fixture
def stack_without_put_object(tmp_path: Path) -> Iterator[RunningStack]:
    template = template_without("s3:PutObject", "BackupFunction", tmp_path)
    stack = start_stack(tmp_path, "--template", str(template))
    try:
        yield stack
    finally:
        assert stack.stop() == 0, stack.log()[-3000:]


def test_a_backup_function_without_put_object_fails_with_access_denied(
    stack_without_put_object: RunningStack, postgres: EmbeddedPostgres
) -> None:
    stack = stack_without_put_object
    name, url = new_database(postgres)
    register(stack, name, url)

    response = stack.api().post(f"{stack.api_url}/v1/databases/{name}/backups")
    assert response.status_code == 202, response.text
    backup = wait_for_backup(stack, name, response.json()["id"])

    assert backup["status"] == "error", backup
    assert "AccessDenied" in backup["error"], backup
    assert "s3:PutObject" in backup["error"] or "PutObject" in backup["error"], backup


def test_no_iam_lets_the_same_template_back_up(tmp_path: Path, postgres: EmbeddedPostgres) -> None:
    template = template_without("s3:PutObject", "BackupFunction", tmp_path)
    stack = start_stack(tmp_path, "--template", str(template), "--no-iam")
    try:
        name, url = new_database(postgres)
        register(stack, name, url)
        response = stack.api().post(f"{stack.api_url}/v1/databases/{name}/backups")
        backup = wait_for_backup(stack, name, response.json()["id"])
        assert backup["status"] == "done", backup
    finally:
        assert stack.stop() == 0, stack.log()[-3000:]


def role_session(stack: RunningStack, role: str) -> boto3.Session:
    """A session of one of the stack's roles, assumed with the owner's key (as the stack
    does for each function)."""
    owner = boto3.Session(
        aws_access_key_id=stack.info["aws_access_key_id"],
        aws_secret_access_key=stack.info["aws_secret_access_key"],
        region_name=stack.info["region"],
    )
    sts = owner.client("sts", endpoint_url=stack.info["aws_endpoint_url"])
    arn = f"arn:aws:iam::123456789012:role/pgbackups-local-{role}-role"
    credentials = sts.assume_role(RoleArn=arn, RoleSessionName="test")["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=stack.info["region"],
    )


WAL_KEY = "databases/shop/pitr/01JBZ4X2Q6W8E0R1T2Y3V4M5N6/wal/000000010000000000000001.gz"
BACKUP_KEY = "databases/shop/backups/01JBZ4X2Q6W8E0R1T2Y3V4M5N6.pgsql"
BASE_KEY = "databases/shop/pitr/01JBZ4X2Q6W8E0R1T2Y3V4M5N6/base/01JBZ4X2Q6W8E0R1T2Y3V4M5N7.tar.gz"


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("wal-capture-function", [WAL_KEY], [BACKUP_KEY, BASE_KEY]),
        ("backup-function", [BACKUP_KEY, BASE_KEY], [WAL_KEY]),
        ("backup-task", [BACKUP_KEY, BASE_KEY], [WAL_KEY]),
    ],
)
def test_each_role_writes_only_its_own_kind_of_key(
    local_stack: RunningStack, role: str, allowed: list[str], refused: list[str]
) -> None:
    s3 = role_session(local_stack, role).client(
        "s3", endpoint_url=local_stack.info["aws_endpoint_url"]
    )
    bucket = local_stack.info["bucket"]
    for key in allowed:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    for key in refused:
        with pytest.raises(ClientError) as refusal:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert refusal.value.response["Error"]["Code"] == "AccessDenied", key
