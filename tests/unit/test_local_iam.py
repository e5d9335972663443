"""The template's policies as the local stack enforces them (pgbackups_local.iam)."""

from __future__ import annotations

from typing import Any

import pytest

from pgbackups_local.iam import (
    AccessDenied,
    Identities,
    RolePolicies,
    function_policies,
    role_policies,
)
from pgbackups_local.signatures import StackKey
from pgbackups_local.stack import TemplateValues
from pgbackups_local.template import load_template, resources_of_type

pytestmark = pytest.mark.unit

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def resolved_values(template: dict[str, Any]) -> TemplateValues:
    """!Ref and !GetAtt …Arn of every resource the policies name, as the stack sets them."""
    values = TemplateValues(template, REGION)
    for logical_id in template["Resources"]:
        values.set_ref(logical_id, logical_id.lower(), f"arn:aws:test:::{logical_id}")
    for logical_id in resources_of_type(template, "AWS::Serverless::Function"):
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
        values.set_ref(logical_id, logical_id, arn)
    return values


def test_every_role_of_the_template_expands() -> None:
    template = load_template()
    values = resolved_values(template)
    for logical_id in resources_of_type(template, "AWS::Serverless::Function"):
        documents = function_policies(template, logical_id, values.resolve_document)
        # SAM's basic execution and X-Ray policies, then the function's own.
        assert len(documents) >= 3, logical_id
        assert "Ref" not in repr(documents) and "Fn::" not in repr(documents), logical_id
    documents = role_policies(template, "BackupTaskRole", values.resolve_document)
    assert documents and "Fn::" not in repr(documents)


def test_moto_sees_non_s3_statements_on_any_resource_and_no_condition() -> None:
    role = RolePolicies(
        "ApiFunction",
        "api-role",
        (
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["dynamodb:UpdateItem", "s3:GetObject"],
                        "Resource": "arn:aws:dynamodb:eu-west-1:1:table/t",
                        "Condition": {"StringLike": {"s3:prefix": "x/*"}},
                    }
                ],
            },
        ),
    )
    (document,) = role.for_moto()
    s3, others = document["Statement"]
    assert s3 == {
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": "arn:aws:dynamodb:eu-west-1:1:table/t",
    }
    # The actions stay the template's; moto's name for a transaction comes with them.
    assert others["Action"] == ["dynamodb:UpdateItem", "dynamodb:TransactWriteItems"]
    assert others["Resource"] == "*" and "Condition" not in others


def test_a_legal_hold_grant_is_moto_s_put_object_on_the_same_objects() -> None:
    """moto checks s3:PutObject for ?legal-hold; AWS checks s3:PutObjectLegalHold. A
    retention grant stays as it is: it must not let a role without s3:PutObject write."""
    objects = "arn:aws:s3:::bucket/databases/*"
    role = RolePolicies(
        "ApiFunction",
        "api-role",
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:PutObjectLegalHold", "Resource": objects}
                ]
            },
        ),
    )
    (document,) = role.for_moto()
    assert document["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["s3:PutObjectLegalHold", "s3:PutObject"],
            "Resource": objects,
        }
    ]
    dates = RolePolicies(
        "BackupFunction",
        "backup-role",
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:PutObjectRetention", "Resource": objects}
                ]
            },
        ),
    )
    (document,) = dates.for_moto()
    assert document["Statement"][0]["Action"] == ["s3:PutObjectRetention"]


def test_the_stacks_endpoints_judge_a_session_by_its_roles_resources() -> None:
    owner = StackKey("AKIAOWNER", "secret")
    session = StackKey("ASIASESSION", "secret", "token")
    identities = Identities(owner=owner)
    backup = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:backup"
    identities.add_session(
        session,
        [{"Statement": [{"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": backup}]}],
    )
    identities.authorize(session, "lambda:GetFunction", [backup])
    identities.authorize(owner, "lambda:GetFunction", [backup + "-other"])
    with pytest.raises(AccessDenied, match="lambda:GetFunction"):
        identities.authorize(session, "lambda:GetFunction", [backup + "-other"])
    with pytest.raises(AccessDenied):
        identities.authorize(session, "lambda:InvokeFunction", [backup])
    assert identities.find("ASIASESSION") == session and identities.find("AKIAOTHER") is None
