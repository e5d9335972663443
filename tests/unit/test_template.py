"""The SAM template declares what the README promises (every route behind the
authorizer, safe storage, logs that expire, no secret in the environment). Also
the `events/` payloads and samconfig.toml, which travel with it.

That sam, cfn-lint and checkov accept it is checked in tests/template/ (`make test-template`).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pgbackups.domain.models import BACKUP_ID, COMPRESSION, DATABASE_NAME, BackupRequest
from pgbackups_local.template import load_template
from tests.unit.test_template_alerts import ALERTS, optional_ref

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"

# The README's "HTTP API" table, one (method, path) per route.
API_ROUTES = {
    ("GET", "/v1/databases"),
    ("POST", "/v1/databases"),
    ("GET", "/v1/databases/{db}"),
    ("PATCH", "/v1/databases/{db}"),
    ("DELETE", "/v1/databases/{db}"),
    ("GET", "/v1/databases/{db}/backups"),
    ("POST", "/v1/databases/{db}/backups"),
    ("GET", "/v1/databases/{db}/backups/{id}"),
    ("DELETE", "/v1/databases/{db}/backups/{id}"),
    ("GET", "/v1/databases/{db}/backups/{id}/archive"),
    ("PUT", "/v1/databases/{db}/backups/{id}/hold"),
    ("DELETE", "/v1/databases/{db}/backups/{id}/hold"),
    ("GET", "/v1/databases/{db}/schedule"),
    ("PUT", "/v1/databases/{db}/schedule"),
    ("GET", "/v1/databases/{db}/pitr"),
    ("PUT", "/v1/databases/{db}/pitr"),
    ("GET", "/v1/databases/{db}/pitr/restore"),
    ("GET", "/v1/token"),
    ("GET", "/v1/tokens"),
    ("POST", "/v1/tokens"),
    ("DELETE", "/v1/tokens/{name}"),
    ("GET", "/v1/audit"),
    ("POST", "/v1/databases/{db}/restores"),
    ("GET", "/v1/databases/{db}/restores"),
    ("GET", "/v1/databases/{db}/restores/{id}"),
    ("POST", "/v1/databases/{db}/verifications"),
    ("GET", "/v1/databases/{db}/verifications"),
    ("GET", "/v1/databases/{db}/verifications/{id}"),
    ("GET", "/v1/databases/{db}/verifications/{id}/report"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/"),  # the dashboard and its static files
    ("GET", "/static/{file}"),
}
PUBLIC_ROUTES = {("GET", "/v1/openapi.json"), ("GET", "/"), ("GET", "/static/{file}")}
FUNCTIONS = {
    "ApiFunction",
    "AuthorizerFunction",
    "BackupFunction",
    "DispatcherFunction",
    "WalCaptureFunction",
}
OUTPUTS = {
    "ApiUrl",
    "DashboardUrl",
    "ApiTokenSecretArn",
    "BucketName",
    "TableName",
    "EventBusName",
    "BackupFunctionName",
    "BackupClusterName",
}


# --------------------------------------------------------------- template loading


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def function_environment(template: dict[str, Any], name: str) -> dict[str, Any]:
    """The function's variables merged over Globals, as SAM merges them."""
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    own = template["Resources"][name]["Properties"].get("Environment", {})
    merged.update(own.get("Variables", {}))
    return merged


def policy_statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    statements = []
    for policy in function["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, (
            f"only inline policy documents are expected, got {policy!r}"
        )
        statements.extend(policy["Statement"])
    return statements


def actions_on(function: dict[str, Any]) -> dict[str, list[Any]]:
    """action -> the resources it is allowed on."""
    allowed: dict[str, list[Any]] = {}
    for statement in policy_statements(function):
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            allowed.setdefault(action, []).append(statement["Resource"])
    return allowed


# ----------------------------------------------------------------- storage


def test_bucket_blocks_public_access(resources: dict[str, Any]) -> None:
    bucket = resources["Bucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_bucket_aborts_incomplete_multipart_uploads_after_one_day(
    resources: dict[str, Any],
) -> None:
    rules = resources["Bucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    aborts = [
        rule
        for rule in rules
        if rule["Status"] == "Enabled" and "AbortIncompleteMultipartUpload" in rule
    ]
    assert len(aborts) == 1
    assert aborts[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    # Whole bucket: no prefix or tag filter narrowing the rule.
    assert "Prefix" not in aborts[0] and "Filter" not in aborts[0]


def test_bucket_is_encrypted_and_kept_on_stack_deletion(resources: dict[str, Any]) -> None:
    bucket = resources["Bucket"]
    (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"


def test_bucket_policy_denies_requests_without_tls(resources: dict[str, Any]) -> None:
    policies = [
        p["Properties"]
        for p in of_type(resources, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": "Bucket"}
    ]
    assert len(policies) == 1
    denies = [
        s
        for s in policies[0]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and s["Action"] in ("s3:*", ["s3:*"])
        and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denies) == 1
    # Both the bucket and its objects.
    assert denies[0]["Resource"] == [
        {"Fn::GetAtt": ["Bucket", "Arn"]},
        {"Fn::Sub": "${Bucket.Arn}/*"},
    ]


def test_table_has_point_in_time_recovery_and_pk_sk_keys(resources: dict[str, Any]) -> None:
    table = resources["Table"]
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


# ------------------------------------------------------------------ functions


def test_the_functions_are_thin_modules_of_functions_dir(resources: dict[str, Any]) -> None:
    functions = of_type(resources, "AWS::Serverless::Function")
    assert set(functions) == FUNCTIONS
    handlers = {name: f["Properties"]["Handler"] for name, f in functions.items()}
    assert handlers == {
        "ApiFunction": "api.handler",
        "AuthorizerFunction": "authorizer.handler",
        "BackupFunction": "backup.handler",
        "DispatcherFunction": "dispatcher.handler",
        "WalCaptureFunction": "wal_capture.handler",
    }
    assert {f["Properties"]["CodeUri"] for f in functions.values()} == {"functions/"}


def test_every_function_has_a_log_group_with_retention(resources: dict[str, Any]) -> None:
    log_groups = of_type(resources, "AWS::Logs::LogGroup")
    for log_group in log_groups.values():
        assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    names = {
        json.dumps(group["Properties"].get("LogGroupName"), sort_keys=True)
        for group in log_groups.values()
    }
    for name, function in of_type(resources, "AWS::Serverless::Function").items():
        custom = function["Properties"].get("LoggingConfig", {}).get("LogGroup")
        if custom is None:
            # Lambda writes to /aws/lambda/<function name>: that group must be declared.
            expected = json.dumps({"Fn::Sub": f"/aws/lambda/${{{name}}}"}, sort_keys=True)
            assert expected in names, f"{name} has no log group /aws/lambda/${{{name}}}"
        else:
            assert custom["Ref"] in log_groups, f"{name} logs to an undeclared group"


def test_every_function_gets_the_settings_it_requires(template: dict[str, Any]) -> None:
    # pgbackups.settings.Settings.from_env fails at cold start without these.
    for name in FUNCTIONS:
        environment = function_environment(template, name)
        assert {"TABLE_NAME", "BUCKET_NAME", "SECRET_PREFIX"} <= set(environment), name
    assert template["Globals"]["Function"]["Environment"]["Variables"]["SECRET_PREFIX"] == {
        "Fn::Sub": "pgbackups/${Stage}"
    }
    backup = function_environment(template, "BackupFunction")
    assert template["Globals"]["Function"]["Environment"]["Variables"]["EVENT_BUS_NAME"] == {
        "Ref": "EventBus"
    }
    assert backup["PGTOOLS_DIR"] == "/opt"
    assert backup["BACKUP_TIMEOUT_SECONDS"] == {"Ref": "BackupTimeoutSeconds"}
    # The API applies it when registering a database without a compression.
    assert template["Globals"]["Function"]["Environment"]["Variables"]["DEFAULT_COMPRESSION"] == {
        "Ref": "DefaultCompression"
    }
    for name in ("ApiFunction", "DispatcherFunction", "WalCaptureFunction"):
        assert function_environment(template, name)["BACKUP_FUNCTION_NAME"] == {
            "Ref": "BackupFunction"
        }
    assert function_environment(template, "AuthorizerFunction")["TOKEN_SECRET_ID"] == {
        "Ref": "ApiTokenSecret"
    }


def test_default_compression_parameter_accepts_what_the_code_accepts(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["DefaultCompression"]
    assert parameter["AllowedPattern"] == COMPRESSION.pattern
    assert COMPRESSION.match(parameter["Default"])


SECRET_LITERAL = re.compile(
    r"postgres(ql)?://|://[^/\s:@]+:[^/\s@]+@|\bbearer\b|token|password|\{\{resolve:",
    re.IGNORECASE,
)
# A variable whose name speaks of a secret may only carry where the secret lives.
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|DSN|URL")
LOCATOR_NAME = re.compile(r"_(ID|ARN|NAME|PREFIX)$")


def literals(value: Any) -> Iterator[str]:
    """The literal strings of a value, leaving out the names Ref and GetAtt point at."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from literals(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("Ref", "Fn::GetAtt"):
                yield from literals(item)


def test_environment_holds_no_secret(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    resources = template["Resources"]
    variables = [("Globals", template["Globals"]["Function"]["Environment"]["Variables"])] + [
        (name, function["Properties"].get("Environment", {}).get("Variables", {}))
        for name, function in of_type(resources, "AWS::Serverless::Function").items()
    ]
    for owner, environment in variables:
        for key, value in environment.items():
            where = f"{owner}.{key}"
            for text in literals(value):
                assert not SECRET_LITERAL.search(text), f"{where} looks like a secret: {text!r}"
            if isinstance(value, dict) and "Ref" in value:
                target = value["Ref"]
                assert not parameters.get(target, {}).get("NoEcho"), f"{where} is a NoEcho value"
            if SECRET_NAME.search(key):
                assert LOCATOR_NAME.search(key), f"{where} should name a secret, not hold one"
                if "SECRET" in key and key != "SECRET_PREFIX":
                    value = optional_ref(value)  # a secret the stack may not create
                    assert isinstance(value, dict) and "Ref" in value, where
                    secret = resources[value["Ref"]]
                    assert secret["Type"] == "AWS::SecretsManager::Secret", where


def test_policies_name_their_actions_and_resources(resources: dict[str, Any]) -> None:
    for name, function in of_type(resources, "AWS::Serverless::Function").items():
        for statement in policy_statements(function):
            actions = statement["Action"]
            for action in [actions] if isinstance(actions, str) else actions:
                assert "*" not in action, f"{name}: wildcard action {action}"
            targets = statement["Resource"]
            for target in targets if isinstance(targets, list) else [targets]:
                assert target != "*", f"{name}: {statement.get('Sid')} on every resource"


def test_each_function_gets_only_what_it_calls(resources: dict[str, Any]) -> None:
    table = {"Fn::GetAtt": ["Table", "Arn"]}
    objects = {"Fn::Sub": "${Bucket.Arn}/databases/*"}
    # Each role writes only its own kind of key (tests/e2e/test_local_stack_iam.py
    # proves it against moto's IAM).
    archives = [
        {"Fn::Sub": "${Bucket.Arn}/databases/*/backups/*"},
        {"Fn::Sub": "${Bucket.Arn}/databases/*/pitr/*/base/*"},
    ]
    wal = {"Fn::Sub": "${Bucket.Arn}/databases/*/pitr/*/wal/*"}
    logical_archives = {"Fn::Sub": "${Bucket.Arn}/databases/*/backups/*"}
    drill_reports = {"Fn::Sub": "${Bucket.Arn}/databases/*/backups/*.verification-*.json"}
    chains = {"Fn::Sub": "${Bucket.Arn}/databases/*/pitr/*"}
    database_secrets = {
        "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
        ":secret:pgbackups/${Stage}/databases/*"
    }
    # A restore's target URL: created by the API, read and deleted by the runner.
    restore_secrets = {
        "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
        ":secret:pgbackups/${Stage}/restores/*"
    }
    backup_function = {"Fn::GetAtt": ["BackupFunction", "Arn"]}
    bus = {"Fn::GetAtt": ["EventBus", "Arn"]}
    # Starting a backup on Fargate: RunTask of the one task definition, passing its
    # two roles, and the backup function's code and layers for the task to fetch.
    start_tasks = {
        "ecs:RunTask": [{"Ref": "BackupTaskDefinition"}],
        "iam:PassRole": [
            [
                {"Fn::GetAtt": ["BackupTaskRole", "Arn"]},
                {"Fn::GetAtt": ["BackupTaskExecutionRole", "Arn"]},
            ]
        ],
        "lambda:GetFunction": [backup_function],
        "lambda:GetLayerVersion": [[{"Ref": "SharedLayer"}, {"Ref": "PgToolsLayer"}]],
    }
    # DynamoDB authorizes the items of TransactWriteItems as PutItem, UpdateItem and
    # DeleteItem: there is no TransactWriteItems action. Only the API and the
    # dispatcher create records (PutItem).
    reads_and_updates = {
        f"dynamodb:{action}": [table] for action in ("GetItem", "UpdateItem", "DeleteItem", "Query")
    }
    catalog = {**reads_and_updates, "dynamodb:PutItem": [table]}

    bucket = {"Fn::GetAtt": ["Bucket", "Arn"]}
    assert actions_on(resources["ApiFunction"]) == {
        **catalog,
        "dynamodb:BatchGetItem": [table],  # the database list's last backups
        "s3:GetObject": [objects],
        "s3:ListBucket": [bucket],  # restore plans list WAL (databases/* only, by condition)
        "s3:DeleteObject": [objects],
        "s3:PutObjectLegalHold": [objects],  # legal holds
        **{
            f"secretsmanager:{action}": [database_secrets]
            for action in ("PutSecretValue", "GetSecretValue")
        },
        **{
            f"secretsmanager:{action}": [database_secrets, restore_secrets]
            for action in ("CreateSecret", "DeleteSecret", "TagResource")
        },
        "lambda:InvokeFunction": [backup_function],
        "events:PutEvents": [bus],
        **start_tasks,
    }
    # Tokens by id, their last use, refusals appended to the audit trail: the TOKENS
    # and AUDIT partitions only (a LeadingKeys condition).
    assert actions_on(resources["AuthorizerFunction"]) == {
        "secretsmanager:GetSecretValue": [{"Ref": "ApiTokenSecret"}],
        **{f"dynamodb:{action}": [table] for action in ("GetItem", "PutItem", "UpdateItem")},
    }
    (tokens_and_audit,) = [
        statement
        for statement in policy_statements(resources["AuthorizerFunction"])
        if statement.get("Sid") == "TokensAndAudit"
    ]
    assert tokens_and_audit["Condition"] == {
        "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["TOKENS", "AUDIT"]}
    }
    assert actions_on(resources["BackupFunction"]) == {
        **reads_and_updates,
        "s3:PutObject": [archives],
        "s3:AbortMultipartUpload": [archives],
        "s3:PutObjectRetention": [archives],  # locked writes, dates extended by retention
        "s3:DeleteObject": [archives],
        "s3:GetObject": [logical_archives],  # restores stream the archive
        "s3:PutObjectTagging": [drill_reports],  # a drill's report, tagged with its kind
        "secretsmanager:GetSecretValue": [database_secrets, restore_secrets],
        "secretsmanager:DeleteSecret": [restore_secrets],
        "events:PutEvents": [bus],
    }
    assert actions_on(resources["DispatcherFunction"]) == {
        **catalog,
        "dynamodb:Scan": [table],  # the whole catalog, once per run
        "s3:DeleteObject": [objects],
        "s3:PutObjectRetention": [objects],  # dates extended by retention
        "secretsmanager:DeleteSecret": [database_secrets, restore_secrets],
        "lambda:InvokeFunction": [backup_function],
        "events:PutEvents": [bus],
        **start_tasks,
        **ALERTS,  # tests/unit/test_template_alerts.py
    }
    # The task does what the backup function does, and reads the continuous backups:
    # point-in-time restores run only there (the server binaries are the task's).
    (task_policy,) = resources["BackupTaskRole"]["Properties"]["Policies"]
    task_actions = actions_on({"Properties": {"Policies": [task_policy["PolicyDocument"]]}})
    assert task_actions == actions_on(resources["BackupFunction"]) | {
        "s3:GetObject": [logical_archives, chains]
    }
    (execution_policy,) = resources["BackupTaskExecutionRole"]["Properties"]["Policies"]
    assert actions_on({"Properties": {"Policies": [execution_policy["PolicyDocument"]]}}) == {
        "logs:CreateLogStream": [{"Fn::GetAtt": ["BackupTaskLogGroup", "Arn"]}],
        "logs:PutLogEvents": [{"Fn::Sub": "${BackupTaskLogGroup.Arn}:log-stream:*"}],
    }
    for role in ("BackupTaskRole", "BackupTaskExecutionRole"):
        (trust,) = resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert trust["Condition"] == {
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        }
    capture_function = {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}"
        ":function:pgbackups-${Stage}-wal-capture-function"
    }
    assert actions_on(resources["WalCaptureFunction"]) == {
        **catalog,
        "s3:PutObject": [wal],
        "s3:PutObjectTagging": [wal],
        "s3:PutObjectRetention": [wal],  # locked WAL segments
        "s3:DeleteObject": [chains],
        "s3:ListBucket": [bucket],
        "secretsmanager:GetSecretValue": [database_secrets],
        "events:PutEvents": [bus],
        # one invocation per database; base backups on the backups' runner
        "lambda:InvokeFunction": [capture_function, backup_function],
        **start_tasks,
    }
    for function in ("ApiFunction", "WalCaptureFunction"):
        (listing,) = [
            s for s in policy_statements(resources[function]) if s["Action"] == "s3:ListBucket"
        ]
        assert listing["Condition"] == {"StringLike": {"s3:prefix": "databases/*"}}


def test_overwritten_wal_does_not_stay_seven_days(resources: dict[str, Any]) -> None:
    rules = resources["Bucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (wal,) = [r for r in rules if r.get("TagFilters")]
    assert wal["TagFilters"] == [{"Key": "pgbackups-kind", "Value": "wal"}]
    assert wal["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}


def test_wal_capture_runs_at_the_interval_parameter(resources: dict[str, Any]) -> None:
    (event,) = resources["WalCaptureFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {
        "Fn::Sub": "cron(0/${CaptureIntervalMinutes} * * * ? *)"
    }


def test_backup_function_has_the_tools_the_time_and_the_retries(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    props = resources["BackupFunction"]["Properties"]
    # SAM appends the function's layers to the global ones.
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "SharedLayer"}]
    assert props["Layers"] == [{"Ref": "PgToolsLayer"}]
    assert props["Timeout"] == {"Ref": "BackupTimeoutSeconds"}
    assert props["MemorySize"] == {"Ref": "BackupMemorySize"}
    assert template["Parameters"]["BackupTimeoutSeconds"]["MaxValue"] == 900
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 2
    condition, vpc, otherwise = props["VpcConfig"]["Fn::If"]
    assert condition == "HasVpc" and otherwise == {"Ref": "AWS::NoValue"}
    assert vpc == {
        "SubnetIds": {"Ref": "DatabaseSubnetIds"},
        "SecurityGroupIds": {"Ref": "DatabaseSecurityGroupIds"},
    }
    # The API checks registered URLs with a real connection, the capture streams WAL:
    # same VPC as the backups.
    assert resources["ApiFunction"]["Properties"]["VpcConfig"] == props["VpcConfig"]
    assert resources["WalCaptureFunction"]["Properties"]["VpcConfig"] == props["VpcConfig"]
    for name in FUNCTIONS - {"BackupFunction", "ApiFunction", "WalCaptureFunction"}:
        assert "VpcConfig" not in resources[name]["Properties"], name
    # Only the backup function runs PostgreSQL's tools (pg_dump, pg_basebackup).
    for name in FUNCTIONS - {"BackupFunction"}:
        assert "Layers" not in resources[name]["Properties"], name


def test_layers_are_built_by_their_makefiles(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    runtime = template["Globals"]["Function"]["Runtime"]
    architectures = template["Globals"]["Function"]["Architectures"]
    layers = of_type(resources, "AWS::Serverless::LayerVersion")
    assert set(layers) == {"SharedLayer", "PgToolsLayer"}
    for name, layer in layers.items():
        props = layer["Properties"]
        assert layer["Metadata"]["BuildMethod"] == "makefile"
        assert props["CompatibleRuntimes"] == [runtime]
        assert props["CompatibleArchitectures"] == architectures
        makefile = (ROOT / props["ContentUri"] / "Makefile").read_text(encoding="utf-8")
        assert re.search(rf"^build-{name}:", makefile, re.MULTILINE), f"no build-{name} target"


def test_dispatcher_runs_at_the_top_of_every_hour(resources: dict[str, Any]) -> None:
    dispatcher = resources["DispatcherFunction"]["Properties"]
    schedules = [
        event["Properties"]
        for event in dispatcher["Events"].values()
        if event["Type"] in ("Schedule", "ScheduleV2")
    ]
    assert [s["Schedule" if "Schedule" in s else "ScheduleExpression"] for s in schedules] == [
        "cron(0 * * * ? *)"
    ]
    assert dispatcher["Timeout"] == 300


# ------------------------------------------------------------------- HTTP API


def http_api_routes(resources: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    routes: dict[tuple[str, str], dict[str, Any]] = {}
    for name, function in of_type(resources, "AWS::Serverless::Function").items():
        for event_name, event in function["Properties"].get("Events", {}).items():
            if event["Type"] != "HttpApi":
                continue
            props = event["Properties"]
            assert props["ApiId"] == {"Ref": "HttpApi"}, f"{name}.{event_name} on another API"
            route = (props["Method"].upper(), props["Path"])
            assert route not in routes, f"{route} declared twice"
            routes[route] = props
    return routes


def test_http_api_declares_every_route_of_the_spec(resources: dict[str, Any]) -> None:
    assert set(http_api_routes(resources)) == API_ROUTES


def test_only_the_openapi_document_and_the_dashboard_are_public(resources: dict[str, Any]) -> None:
    auth = resources["HttpApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "TokenAuthorizer"
    public = {
        route
        for route, props in http_api_routes(resources).items()
        if props.get("Auth", {}).get("Authorizer") == "NONE"
    }
    assert public == PUBLIC_ROUTES
    overridden = {
        route
        for route, props in http_api_routes(resources).items()
        if props.get("Auth", {}).get("Authorizer") not in (None, "NONE", "TokenAuthorizer")
    }
    assert overridden == set()


def test_the_authorizer_checks_the_bearer_token(resources: dict[str, Any]) -> None:
    authorizer = resources["HttpApi"]["Properties"]["Auth"]["Authorizers"]["TokenAuthorizer"]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert authorizer["AuthorizerPayloadFormatVersion"] == "2.0"
    assert authorizer["EnableSimpleResponses"] is True
    # Without it API Gateway may not invoke the function and every call gets a 500.
    assert authorizer["EnableFunctionDefaultPermissions"] is True
    assert authorizer["Identity"] == {"Headers": ["Authorization"], "ReauthorizeEvery": 60}
    secret = resources["ApiTokenSecret"]["Properties"]
    assert secret["Name"] == {"Fn::Sub": "pgbackups/${Stage}/api-token"}
    assert secret["GenerateSecretString"]["PasswordLength"] >= 32
    assert "SecretString" not in secret


def test_outputs_are_the_contract(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert set(outputs) == OUTPUTS
    assert outputs["ApiTokenSecretArn"]["Value"] == {"Ref": "ApiTokenSecret"}
    assert "aws secretsmanager get-secret-value" in outputs["ApiTokenSecretArn"]["Description"]
    assert all(output.get("Description") for output in outputs.values())


# --------------------------------------------------------- events and config


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def test_dispatcher_event_is_the_hourly_rule_firing() -> None:
    event = load_event("dispatcher.json")
    assert event["source"] == "aws.events"
    assert event["detail-type"] == "Scheduled Event"
    assert event["detail"] == {}
    fired_at = datetime.fromisoformat(event["time"])
    assert event["time"].endswith("Z") and fired_at.utcoffset() is not None
    assert (fired_at.minute, fired_at.second) == (0, 0)
    (rule,) = event["resources"]
    assert re.fullmatch(r"arn:aws:events:[a-z0-9-]+:\d{12}:rule/[\w.-]+", rule)
    assert rule.split(":")[3] == event["region"] and rule.split(":")[4] == event["account"]


def test_backup_event_is_the_async_invoke_payload() -> None:
    event = load_event("backup.json")
    assert set(event) == {"database", "backup_id"}
    assert DATABASE_NAME.match(event["database"])
    assert BACKUP_ID.match(event["backup_id"])
    # ULIDs start with a 48-bit timestamp: the first character is at most 7.
    assert event["backup_id"][0] <= "7"


def test_base_backup_event_is_a_request_of_the_base_kind() -> None:
    event = load_event("backup-base.json")
    request = BackupRequest.model_validate(event)
    assert request.kind == "base" and request.model_dump(exclude_none=True) == event
    assert BackupRequest.model_validate(load_event("backup.json")).kind == "logical"


def test_samconfig_deploys_the_three_stages() -> None:
    text = (ROOT / "samconfig.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)
    assert config["version"] == 0.1
    stacks = {"default": "pgbackups", "staging": "pgbackups-staging", "prod": "pgbackups-prod"}
    for env, stack in stacks.items():
        build = config[env]["build"]["parameters"]
        assert build["build_in_source"] is build["parallel"] is True
        # Not cached: the shared layer's makefile copies ../../pgbackups, which sam's
        # cache key (the layer folder) does not see.
        assert build["cached"] is False
        deploy = config[env]["deploy"]["parameters"]
        assert deploy["stack_name"] == stack
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        assert deploy["resolve_s3"] is True
        assert deploy["parameter_overrides"] == f"Stage={env}"
        assert config[env]["validate"]["parameters"]["lint"] is True
    assert config["default"]["deploy"]["parameters"]["confirm_changeset"] is False
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert set(load_template()["Parameters"]["Stage"]["AllowedValues"]) == set(stacks)
    # Nothing account-specific or secret: it is committed.
    assert not re.search(r"\b\d{12}\b|arn:aws|token|password", text, re.IGNORECASE)


# ---------------------------------------------------------------- Fargate


def test_the_backup_task_runs_the_function_code_on_the_public_lambda_image(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    props = resources["BackupTaskDefinition"]["Properties"]
    assert props["RequiresCompatibilities"] == ["FARGATE"] and props["NetworkMode"] == "awsvpc"
    assert props["Cpu"] == {"Ref": "FargateCpu"}
    assert props["Memory"] == {"Ref": "FargateMemory"}
    assert props["EphemeralStorage"] == {"SizeInGiB": {"Ref": "FargateEphemeralStorageGiB"}}
    assert props["TaskRoleArn"] == {"Fn::GetAtt": ["BackupTaskRole", "Arn"]}
    assert props["ExecutionRoleArn"] == {"Fn::GetAtt": ["BackupTaskExecutionRole", "Arn"]}
    (container,) = props["ContainerDefinitions"]
    # The same runtime as the functions: Amazon Linux 2023, the layers' Python.
    runtime = template["Globals"]["Function"]["Runtime"].removeprefix("python")
    assert container["Image"] == f"public.ecr.aws/lambda/python:{runtime}"
    assert container["ReadonlyRootFilesystem"] is True
    assert container["EntryPoint"] == ["/var/lang/bin/python3", "-c"]
    (loader,) = container["Command"]
    assert "task_bootstrap.py" in loader and "PGBACKUPS_TASK_CODE" in loader
    assert (ROOT / "functions" / "task_bootstrap.py").is_file()
    assert container["LogConfiguration"]["Options"]["awslogs-group"] == {
        "Ref": "BackupTaskLogGroup"
    }
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    backup = function_environment(template, "BackupFunction")
    for name in (
        "TABLE_NAME",
        "BUCKET_NAME",
        "SECRET_PREFIX",
        "EVENT_BUS_NAME",
        "DEFAULT_COMPRESSION",
    ):
        assert environment[name] == backup[name], name
    assert environment["BACKUP_TASK_TIMEOUT_SECONDS"] == {"Ref": "BackupTaskTimeoutSeconds"}
    for name, value in environment.items():
        for text in literals(value):
            assert not SECRET_LITERAL.search(text), f"{name} looks like a secret: {text!r}"
    assert resources["BackupCluster"]["Type"] == "AWS::ECS::Cluster"


def test_the_functions_that_start_backups_know_the_fargate_runner(template: dict[str, Any]) -> None:
    # The WAL capture starts base backups on the same runners as logical backups.
    for name in ("ApiFunction", "DispatcherFunction", "WalCaptureFunction"):
        environment = function_environment(template, name)
        assert environment["BACKUP_TASK_CLUSTER"] == {"Ref": "BackupCluster"}
        assert environment["BACKUP_TASK_DEFINITION"] == {"Ref": "BackupTaskDefinition"}
        # The tasks run in the databases' subnets, as the functions do.
        assert environment["BACKUP_TASK_SUBNETS"] == {
            "Fn::Join": [",", {"Ref": "DatabaseSubnetIds"}]
        }
        assert environment["BACKUP_TASK_SECURITY_GROUPS"] == {
            "Fn::Join": [",", {"Ref": "DatabaseSecurityGroupIds"}]
        }
        assert environment["FARGATE_SIZE_THRESHOLD_BYTES"] == {"Ref": "FargateSizeThresholdBytes"}
        assert environment["BACKUP_TIMEOUT_SECONDS"] == {"Ref": "BackupTimeoutSeconds"}


# -- throttling and concurrency ----------------------------------------------------------


def _default_of(template: dict[str, Any], value: Any) -> int:
    """The deployed value of a number given as a literal or !Ref of a parameter."""
    if isinstance(value, dict) and "Ref" in value:
        return int(template["Parameters"][value["Ref"]]["Default"])
    return int(value)


def test_every_route_is_throttled_by_default() -> None:
    """The public routes (/, /static, /v1/openapi.json) invoke the API function with no
    token: the stage's default route settings bound how often anyone can."""
    template = load_template()
    (api,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::HttpApi"]
    settings = api["Properties"]["DefaultRouteSettings"]
    rate = _default_of(template, settings["ThrottlingRateLimit"])
    burst = _default_of(template, settings["ThrottlingBurstLimit"])
    assert 0 < rate <= 100 and rate <= burst <= 200, (rate, burst)


def test_the_api_cannot_take_the_backup_functions_concurrency() -> None:
    """The API and its authorizer have reserved (so capped) concurrency: a flood of
    requests leaves the rest of the account's concurrency to backups and captures."""
    template = load_template()
    for logical_id in ("ApiFunction", "AuthorizerFunction"):
        props = template["Resources"][logical_id]["Properties"]
        reserved = props["ReservedConcurrentExecutions"]
        assert reserved == {"Ref": "ApiReservedConcurrency"}, logical_id
    assert 0 < _default_of(template, {"Ref": "ApiReservedConcurrency"}) <= 50


def test_every_sample_event_of_a_protected_route_carries_the_authorizers_context() -> None:
    """`sam local invoke -e` and the tests send these: a protected route's event without a
    token's name and role would be refused by the API, as API Gateway would never send it."""
    public = {"api-get-dashboard.json", "api-get-openapi.json"}
    for path in sorted(EVENTS.glob("api-*.json")):
        if path.name in public:
            continue
        context = json.loads(path.read_text(encoding="utf-8"))["requestContext"]["authorizer"]
        assert context["lambda"].get("role") in ("read", "operate", "admin"), path.name
        assert context["lambda"].get("token"), path.name
