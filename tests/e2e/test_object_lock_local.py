"""The local stack locks as the template does by default (governance, 7 days): a user
sees the date, cannot delete the backup before it, and holds and releases it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import Cli, RunningStack, beside_the_stack, lines, start_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack started without --backup-lock: the template's default."""
    stack = start_stack(tmp_path_factory.mktemp("locked-stack"))
    try:
        yield stack
    finally:
        assert stack.stop() == 0, stack.log()[-3000:]


@pytest.fixture
def locked_cli(default_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    base = tmp_path_factory.mktemp("locked-cli")
    (base / "work").mkdir()
    (base / "home").mkdir()
    return Cli(default_stack, beside_the_stack(base / "work", default_stack), base / "home")


def test_a_backup_is_locked_seven_days_held_and_released(
    locked_cli: Cli, default_stack: RunningStack, postgres: EmbeddedPostgres
) -> None:
    cli = locked_cli
    url = postgres.create_database("locked_shop")
    assert cli("databases-add", "locked_shop", "--url", "-", input=url + "\n").returncode == 0
    created = cli("backups-create", "-d", "locked_shop")
    assert created.returncode == 0, created.stderr
    backup_id = lines(created.stdout)[0].rsplit(" ", 1)[-1]

    backup = cli.api_get(f"/v1/databases/locked_shop/backups/{backup_id}")
    until = datetime.fromisoformat(backup["locked_until"])
    assert timedelta(days=6, hours=23) < until - datetime.now(UTC) <= timedelta(days=7)
    assert backup["legal_hold"] is False
    info = default_stack.info
    s3 = boto3.client(
        "s3",
        endpoint_url=info["aws_endpoint_url"],
        region_name=info["region"],
        aws_access_key_id=info["aws_access_key_id"],
        aws_secret_access_key=info["aws_secret_access_key"],
    )
    head = s3.head_object(
        Bucket=info["bucket"], Key=f"databases/locked_shop/backups/{backup_id}.pgsql"
    )
    assert head["ObjectLockMode"] == "GOVERNANCE"

    refused = cli("backups-delete", "-d", "locked_shop", "--backup", backup_id, "--yes")
    assert refused.returncode == 1
    assert f"is locked until {backup['locked_until']}" in refused.stderr

    held = cli("backups-hold", "-d", "locked_shop", "--backup", backup_id)
    assert held.returncode == 0, held.stderr
    assert lines(held.stdout)[0] == f"-----> Backup {backup_id} of locked_shop is on legal hold"
    hold = s3.get_object_legal_hold(
        Bucket=info["bucket"], Key=f"databases/locked_shop/backups/{backup_id}.pgsql"
    )
    assert hold["LegalHold"]["Status"] == "ON"
    shown = cli("backups-info", "-d", "locked_shop", "--backup", backup_id)
    assert "Legal hold:" in shown.stdout and "yes" in shown.stdout.split("Legal hold:")[1]

    released = cli("backups-release", "-d", "locked_shop", "--backup", backup_id)
    assert released.returncode == 0, released.stderr
    assert cli.api_get(f"/v1/databases/locked_shop/backups/{backup_id}")["legal_hold"] is False
