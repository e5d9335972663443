"""The template's IAM, enforced locally: one role per function and for the Fargate task.

Each function's policies are read from template.yaml as `sam validate` expands
them (its inline statements, the managed policies SAM attaches: basic execution,
and X-Ray write access because Tracing is Active), resolved with the local
resources' ARNs, and put on a role of its own in moto. The stack assumes each
role (it plays Lambda and ECS here) and the function runs with that session's
credentials, so moto refuses what AWS would refuse.

Two local differences, both because moto has no request context to judge:

- moto checks S3 by action and resource, every other service by action only (it
  passes `*` as the resource): a non-S3 statement gets `Resource: "*"` in moto,
  with its actions unchanged. The Lambda and ECS endpoints of this stack check
  the template's own resources (the function, the layer, the task definition,
  the roles passed).
- Conditions are dropped (moto would refuse every statement that has one).
- moto asks for `dynamodb:TransactWriteItems` / `TransactGetItems`, which are not
  IAM actions: AWS checks each item's own action (PutItem, UpdateItem, …). A
  statement allowing one of those also allows moto's name for the transaction.
- moto checks `s3:PutObject` for a legal hold put on an object (its table of S3
  actions has no entry for it), where AWS checks `s3:PutObjectLegalHold`: a
  statement allowing that also allows `s3:PutObject` on the same objects in moto.
  (The same holds for a retention date, `s3:PutObjectRetention`, but that one is
  not translated: every writer that sets dates may write those objects anyway, and
  translating it would let a role without `s3:PutObject` write, hiding exactly the
  missing action the enforcement is there to find.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pgbackups_local.signatures import StackKey

# SAM attaches these to every function's role; Tracing: Active adds X-Ray's.
BASIC_EXECUTION = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
}
XRAY_WRITE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
}
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": BASIC_EXECUTION,
    "AWSXrayWriteOnlyAccess": XRAY_WRITE_ONLY,
}
# moto's action for a transaction: granted with any of the actions AWS checks per item.
TRANSACTIONS = {
    "dynamodb:TransactWriteItems": (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    ),
    "dynamodb:TransactGetItems": ("dynamodb:GetItem",),
}
# moto's action for an object's legal hold: S3's own is granted.
S3_AS_MOTO_CHECKS = {"s3:PutObject": ("s3:PutObjectLegalHold",)}
# The roles' sessions last as long as a local stack may reasonably run.
SESSION_SECONDS = 12 * 3600
OWNER_USER = "pgbackups-local-owner"


class AccessDenied(Exception):
    """The caller's policies do not allow the action on the resource."""


class PolicyError(ValueError):
    """A policy of the template the local stack cannot expand; the message says which."""


@dataclass(frozen=True)
class RolePolicies:
    """One role of the template: its name and its policy documents, resolved."""

    logical_id: str  # the function's or the AWS::IAM::Role's
    role_name: str
    documents: tuple[dict[str, Any], ...]

    def for_moto(self) -> list[dict[str, Any]]:
        """The documents as moto can check them (see the module's docstring)."""
        return [_for_moto(document) for document in self.documents]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _for_moto(document: dict[str, Any]) -> dict[str, Any]:
    statements = []
    for statement in _as_list(document["Statement"]):
        statement = {k: v for k, v in statement.items() if k != "Condition"}
        actions = _as_list(statement.get("Action", []))
        s3 = [a for a in actions if a.startswith("s3:")]
        others = [a for a in actions if not a.startswith("s3:")]
        s3 += [
            checked
            for checked, granted in S3_AS_MOTO_CHECKS.items()
            if checked not in s3 and any(action in s3 for action in granted)
        ]
        if s3:
            statements.append({**statement, "Action": s3})
        others += [
            transaction
            for transaction, per_item in TRANSACTIONS.items()
            if any(action in others for action in per_item)
        ]
        if others:
            statements.append({**statement, "Action": others, "Resource": "*"})
    return {"Version": document.get("Version", "2012-10-17"), "Statement": statements}


def without_conditions(document: dict[str, Any]) -> dict[str, Any]:
    statements = [
        {k: v for k, v in statement.items() if k != "Condition"}
        for statement in _as_list(document["Statement"])
    ]
    return {"Version": document.get("Version", "2012-10-17"), "Statement": statements}


def function_policies(
    template: dict[str, Any], logical_id: str, resolve: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    """The policy documents of a function's role, as SAM builds it."""
    resource = template["Resources"][logical_id]
    props = resource["Properties"]
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    if "Role" in props:
        raise PolicyError(f"{logical_id} names its own Role; the local stack expects Policies")
    documents = [BASIC_EXECUTION]
    if props.get("Tracing", globals_.get("Tracing")) == "Active":
        documents.append(XRAY_WRITE_ONLY)
    for policy in _as_list(props.get("Policies") or []):
        documents.append(_expand(logical_id, policy, resolve))
    return documents


def role_policies(
    template: dict[str, Any], logical_id: str, resolve: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    """The policy documents of an AWS::IAM::Role of the template."""
    props = template["Resources"][logical_id]["Properties"]
    documents = [resolve(policy["PolicyDocument"]) for policy in props.get("Policies") or []]
    for arn in props.get("ManagedPolicyArns") or []:
        documents.append(_expand(logical_id, str(resolve(arn)).rsplit("/", 1)[-1], resolve))
    return documents


def _expand(owner: str, policy: Any, resolve: Callable[[Any], Any]) -> dict[str, Any]:
    if isinstance(policy, str):
        name = policy.rsplit("/", 1)[-1]
        if name in MANAGED_POLICIES:
            return MANAGED_POLICIES[name]
    elif isinstance(policy, dict) and "Statement" in policy:
        return dict(resolve(policy))
    raise PolicyError(
        f"{owner}: the local stack cannot expand the policy {policy!r}; "
        "add its statements to pgbackups_local/iam.py"
    )


# -- who may call the stack's own endpoints ------------------------------------------------


@dataclass
class Identities:
    """The keys this stack's endpoints accept, and what each may do.

    The owner (the stack's own key) may do anything; a role session what its
    policies allow, judged with moto's own policy evaluation.
    """

    owner: StackKey
    _sessions: dict[str, tuple[StackKey, tuple[dict[str, Any], ...]]] = field(default_factory=dict)
    enforced: bool = True

    def add_session(self, key: StackKey, documents: Iterable[dict[str, Any]]) -> None:
        self._sessions[key.access_key_id] = (key, tuple(without_conditions(d) for d in documents))

    def find(self, access_key_id: str) -> StackKey | None:
        if access_key_id == self.owner.access_key_id:
            return self.owner
        session = self._sessions.get(access_key_id)
        return session[0] if session else None

    def authorize(self, key: StackKey, action: str, resources: Iterable[str]) -> None:
        """AccessDenied unless `key` may do `action` on every one of `resources`."""
        if key.access_key_id == self.owner.access_key_id or not self.enforced:
            return
        from moto.iam.access_control import IAMPolicy, PermissionResult

        _, documents = self._sessions[key.access_key_id]
        for resource in resources:
            results = [
                IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)
                for document in documents
            ]
            if PermissionResult.DENIED in results or PermissionResult.PERMITTED not in results:
                raise AccessDenied(
                    f"User: {key.access_key_id} is not authorized to perform: {action} "
                    f"on resource: {resource}"
                )


def trust_policy(owner_arn: str) -> dict[str, Any]:
    """Locally the stack plays Lambda and ECS: its owner assumes the roles."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": owner_arn}, "Action": "sts:AssumeRole"}
        ],
    }


def create_role_session(iam: Any, sts: Any, role: RolePolicies, owner_arn: str) -> StackKey:
    """The role in moto, with its policies, and a session of it: its credentials."""
    arn = iam.create_role(
        RoleName=role.role_name,
        AssumeRolePolicyDocument=json.dumps(trust_policy(owner_arn)),
        MaxSessionDuration=SESSION_SECONDS,
    )["Role"]["Arn"]
    for number, document in enumerate(role.for_moto(), start=1):
        iam.put_role_policy(
            RoleName=role.role_name,
            PolicyName=f"policy-{number}",
            PolicyDocument=json.dumps(document),
        )
    credentials = sts.assume_role(
        RoleArn=arn, RoleSessionName=role.role_name[:64], DurationSeconds=SESSION_SECONDS
    )["Credentials"]
    return StackKey(
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    )
