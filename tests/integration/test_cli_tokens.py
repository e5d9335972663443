"""`tokens`, `tokens-create`, `tokens-revoke` and `audit [--verify]` against the real API
(the local gateway, the real authorizer, moto): what they print, their exit codes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pgbackups_cli import main
from pgbackups_local.gateway import Gateway
from tests.conftest import ROOT, AwsStack, RecordingRunner

pytestmark = pytest.mark.integration


@pytest.fixture
def deploy_token(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> str:
    value = secrets.token_urlsafe(36)
    arn = aws.secretsmanager.create_secret(
        Name=f"{aws.settings.secret_prefix}/api-token", SecretString=value
    )["ARN"]
    monkeypatch.setenv("TOKEN_SECRET_ID", arn)
    return value


@pytest.fixture
def gateway(
    aws: AwsStack, deploy_token: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Gateway]:
    # The functions run in this process: their metrics would print amid the CLI's output.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    gateway = Gateway(functions_dir=ROOT / "functions").start()
    gateway.module("api").services.runner = RecordingRunner()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("XDG_CONFIG_HOME", "PGBACKUPS_CONFIG", "PGBACKUPS_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGBACKUPS_API_URL", gateway.url)
    monkeypatch.setenv("PGBACKUPS_TOKEN", deploy_token)
    try:
        yield gateway
    finally:
        gateway.stop()


def run(*args: str, token: str | None = None, input: str | None = None) -> Result:
    options = ["--token", token] if token else []
    return CliRunner().invoke(main, [*options, *args], input=input, catch_exceptions=False)


def test_create_list_use_and_revoke(gateway: Gateway) -> None:
    created = run("tokens-create", "ci", "--role", "read", "--expires-in", "30")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("pgb_") and "\n" not in secret
    assert "-----> Token ci created: role read, expires 20" in created.stderr
    assert "shown this once" in created.stderr

    listed = run("tokens")
    assert listed.exit_code == 0
    assert "ci" in listed.stdout and "read" in listed.stdout
    assert secret not in listed.stdout

    assert run("databases", token=secret).exit_code == 0
    refused = run("tokens", token=secret)
    assert refused.exit_code == 1
    assert " !     this needs the admin role; the token has the read role" in refused.stderr

    cancelled = run("tokens-revoke", "ci", input="n\n")
    assert cancelled.exit_code == 1
    assert run("databases", token=secret).exit_code == 0

    revoked = run("tokens-revoke", "ci", "--yes")
    assert revoked.exit_code == 0
    assert "-----> Token ci revoked: requests with it are refused within a minute" in revoked.stdout
    after = run("databases", token=secret)
    assert after.exit_code == 1
    assert "refused the token" in after.stderr
    assert "No tokens yet" in run("tokens").stdout


def test_a_bad_role_is_a_usage_error(gateway: Gateway) -> None:
    result = run("tokens-create", "ci", "--role", "root")
    assert result.exit_code == 2
    assert "'root' is not one of 'read', 'operate', 'admin'" in result.stderr


def test_audit_lists_and_verifies_then_finds_tampering(gateway: Gateway, aws: AwsStack) -> None:
    secret = run("tokens-create", "ci", "--role", "read").stdout.strip()
    run("tokens", token=secret)  # refused: recorded
    run("tokens-revoke", "ci", "--yes")

    listed = run("audit")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0] == "=== Audit trail"
    # After the title, header and rule: # │ AT │ TOKEN │ ROLE │ FROM │ REQUEST │ STATUS
    rows = [[cell.strip() for cell in line.split("│")] for line in lines[3:]]
    assert [(row[0], row[2], row[4], row[5], row[6]) for row in rows] == [
        ("3", "deploy", "127.0.0.1", "DELETE /v1/tokens/ci", "204"),
        ("2", "ci", "127.0.0.1", "GET /v1/tokens", "403"),
        ("1", "deploy", "127.0.0.1", "POST /v1/tokens", "201"),
    ]
    by_ci = run("audit", "--by", "ci")
    assert "ci" in by_ci.stdout, by_ci.stderr
    assert run("audit", "--by", "nobody").stdout == "-----> No entries.\n"

    checked = run("audit", "--verify")
    assert checked.exit_code == 0
    assert checked.stdout == (
        "-----> The audit trail checks out: 3 entries, 1 to 3, each holding the hash of "
        "the one before\n"
    )

    aws.dynamodb.update_item(
        TableName=aws.settings.table_name,
        Key={"pk": {"S": "AUDIT"}, "sk": {"S": f"ENTRY#{2:012d}"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"N": "200"}},
    )
    broken = run("audit", "--verify")
    assert broken.exit_code == 1
    assert (
        " !     The audit trail is broken at entry 2: entry 2 was changed after it was written."
        in broken.stderr
    )
