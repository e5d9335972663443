"""template.yaml's Object Lock: the parameters, the bucket, and no role that can bypass it."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

import pytest

from pgbackups.domain.lock import DEFAULT_LOCK_DAYS, DEFAULT_LOCK_MODE, LOCK_MODES
from pgbackups_local.template import load_template

pytestmark = pytest.mark.unit

# The actions that lift a lock or a hold before its time, in governance mode.
BYPASS = ("s3:BypassGovernanceRetention",)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def allowed_actions(template: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(resource, action) for every Allow statement of every policy the stack declares:
    the functions' (SAM's Policies), the roles' and the bucket's."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        documents = [p for p in props.get("Policies", []) if isinstance(p, dict)]
        documents = [p.get("PolicyDocument", p) for p in documents]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            for statement in document.get("Statement", []):
                if statement.get("Effect") != "Allow":
                    continue
                actions = statement.get("Action", [])
                for action in [actions] if isinstance(actions, str) else actions:
                    yield name, action


def test_backup_lock_defaults_to_governance_for_seven_days(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["BackupLock"]["Default"] == DEFAULT_LOCK_MODE == "governance"
    assert tuple(parameters["BackupLock"]["AllowedValues"]) == LOCK_MODES
    assert parameters["BackupLockDays"]["Default"] == DEFAULT_LOCK_DAYS == 7
    assert parameters["BackupLockDays"]["MinValue"] >= 1


def test_the_bucket_has_object_lock_and_versioning_with_a_lock(template: dict[str, Any]) -> None:
    assert template["Conditions"]["HasBackupLock"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "BackupLock"}, "off"]}]
    }
    bucket = template["Resources"]["Bucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["ObjectLockEnabled"] == {
        "Fn::If": ["HasBackupLock", True, {"Ref": "AWS::NoValue"}]
    }
    (condition, configuration, otherwise) = bucket["ObjectLockConfiguration"]["Fn::If"]
    assert (condition, otherwise) == ("HasBackupLock", {"Ref": "AWS::NoValue"})
    # No default retention: every write sets its own date, and the partial WAL segment,
    # rewritten every capture, stays unlocked.
    assert configuration == {"ObjectLockEnabled": "Enabled"}


def test_every_writer_learns_the_lock_from_the_template(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["BACKUP_LOCK"] == {"Ref": "BackupLock"}
    assert variables["BACKUP_LOCK_DAYS"] == {"Ref": "BackupLockDays"}
    (container,) = template["Resources"]["BackupTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    environment = {v["Name"]: v["Value"] for v in container["Environment"]}
    assert environment["BACKUP_LOCK"] == {"Ref": "BackupLock"}
    assert environment["BACKUP_LOCK_DAYS"] == {"Ref": "BackupLockDays"}


def test_no_role_of_the_stack_can_bypass_a_lock(template: dict[str, Any]) -> None:
    granted = list(allowed_actions(template))
    assert any(action == "s3:PutObjectRetention" for _, action in granted)  # the walk works
    bypassing = [
        (name, action)
        for name, action in granted
        for bypass in BYPASS
        if fnmatch.fnmatch(bypass.lower(), action.lower())  # s3:*, s3:Bypass*, *
    ]
    assert bypassing == []


def test_only_the_api_places_and_lifts_legal_holds(template: dict[str, Any]) -> None:
    holders = {name for name, action in allowed_actions(template) if "LegalHold" in action}
    assert holders == {"ApiFunction"}
