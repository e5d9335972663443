"""The local stack enforces template.yaml's IAM: each function can do what its policies
allow and nothing more, so a policy missing an action fails here as it would on AWS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
