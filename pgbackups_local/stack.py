"""The local stack: the whole system from template.yaml, on moto, in one process and moto's.

    moto (werkzeug, 127.0.0.1,            ◀── every boto3 client (AWS_ENDPOINT_URL),
          in a child process)                 signed with the stack's own key
    Gateway (--host/--port)               ── authorizer + api function, in-process
    LambdaRuntime (127.0.0.1)             ◀── lambda.invoke (AWS_ENDPOINT_URL_LAMBDA):
                                              worker pool running the backup function
    HourlyRule                            ── the dispatcher at the top of every hour
    EmbeddedPostgres (--demo)             ── sample data, registered as `demo`

The bucket, table, event bus and token secret are created from the template's
own resources, named as the template names them with Stage=local, and every
function gets the environment the template declares (resolved the same way),
pointed at moto with the stack's key. The handlers are the unmodified
functions/*.py: they cannot tell this process from Lambda.

Only the stack's owner can use it: moto and the Lambda invoke endpoint answer
requests signed with a random key (pgbackups_local.signatures) kept in stack.json
(mode 0600) and in this process's environment only.

Shutdown runs in the reverse order of start-up: no new work (rule, gateway),
the workers finish or fail their backups, then PostgreSQL, then moto, and
stack.json goes last.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgbackups.postgres.pgtools import PgToolsNotFound, locate_pgtools
from pgbackups.postgres.servers import PGSERVER_DIRS_ENV
from pgbackups_cli.stack_file import DEFAULT_STATE_DIR, STACK_FILE, process_alive
from pgbackups_local import leftovers
from pgbackups_local.code_packages import CodePackages
from pgbackups_local.ecs_runtime import IMAGE_PYTHON, EcsRuntime, LocalTaskDefinition
from pgbackups_local.iam import (
    OWNER_USER,
    Identities,
    PolicyError,
    RolePolicies,
    create_role_session,
    function_policies,
    role_policies,
)
from pgbackups_local.lambda_runtime import (
    ACCOUNT_ID,
    HourlyRule,
    LambdaRuntime,
    LocalFunction,
    layer_version_arn,
    scheduled_event,
)
from pgbackups_local.signatures import StackKey
from pgbackups_local.template import TEMPLATE, load_template, resources_of_type, table_definition

# A child of the functions' powertools logger, so both write to the same stream in order.
log = logging.getLogger("pgbackups.local")

REPO = TEMPLATE.parent
BUILT_LAYER = REPO / ".aws-sam" / "build" / "PgToolsLayer"
STAGE = "local"
REGION = "eu-west-1"
DEMO_DATABASE = "demo"
# How long running backups may take to finish once the stack is asked to stop.
SHUTDOWN_GRACE_SECONDS = 10.0
# The secret whose value is the API's bearer token.
TOKEN_SECRET = "ApiTokenSecret"  # noqa: S105 (a logical id, not a secret)
# Shutdown order: no new work, then the work in flight, then what it relies on.
STOP_ORDER = (
    "rules",
    "gateway",
    "workers",
    "tasks",
    "replication slots",
    "ecs endpoint",
    "lambda endpoint",
    "demo PostgreSQL",
    "moto",
)
# The functions run in this process, in no VPC; the Fargate runner needs subnets to
# start a task, so the local stack gives it placeholders (the local RunTask checks
# that some are passed, as ECS does).
LOCAL_NETWORK = {"DatabaseSubnetIds": "subnet-local", "DatabaseSecurityGroupIds": "sg-local"}
# The HTTP API's URL as the template writes it (ApiUrl, DashboardUrl, DASHBOARD_ADDRESS):
# here, the gateway's.
API_URL_SUB = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"


class StackError(RuntimeError):
    """The local stack cannot start; the message says what to do."""


def pgtools_dir(environ: dict[str, str] | None = None) -> Path:
    """The built pgtools layer (bin/, lib/): what the backup function sees as /opt."""
    try:
        tools = locate_pgtools(environ, fallback=BUILT_LAYER, program="pg_dump")
    except PgToolsNotFound as error:
        raise StackError(f"the PostgreSQL client tools layer is missing: {error}") from None
    return tools.root


# -- names and environment, as the template declares them -------------------------------


def kebab(logical_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id).lower()


def generated_name(logical_id: str) -> str:
    """CloudFormation's name for a resource the template leaves unnamed (`pgbackups-local-table`)."""
    return f"pgbackups-{STAGE}-{kebab(logical_id)}"


def function_name(logical_id: str) -> str:
    return generated_name(logical_id)


class TemplateValues:
    """Resolves !Ref and !Sub of the template with Stage=local and the local resources."""

    def __init__(
        self, template: dict[str, Any], region: str, parameters: dict[str, str] | None = None
    ) -> None:
        self.values: dict[str, str] = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": f"pgbackups-{STAGE}",
        }
        for name, parameter in (template.get("Parameters") or {}).items():
            if "Default" in parameter:
                self.values[name] = str(parameter["Default"])
        for name, value in LOCAL_NETWORK.items():
            if name in self.values and not self.values[name]:
                self.values[name] = value
        for name, value in (parameters or {}).items():
            if name not in (template.get("Parameters") or {}):
                raise StackError(f"template.yaml has no parameter {name}")
            self.values[name] = value
        self.values["Stage"] = STAGE
        self.conditions: dict[str, Any] = dict(template.get("Conditions") or {})
        self.api_url = ""  # the gateway's, once known (LocalStack.__init__)

    def holds(self, condition: Any) -> bool:
        """A template condition (by name, or Fn::Not / Fn::Equals of values) on these values."""
        if isinstance(condition, str):
            return self.holds(self.conditions[condition])
        if "Fn::Not" in condition:
            return not self.holds(condition["Fn::Not"][0])
        if "Fn::Equals" in condition:
            left, right = condition["Fn::Equals"]
            return self.resolve(left) == self.resolve(right)
        raise StackError(f"the local stack cannot evaluate {condition!r} from template.yaml")

    def set_ref(self, logical_id: str, value: str, arn: str | None = None) -> None:
        """What !Ref of the resource gives, and !GetAtt <id>.Arn when it has an ARN."""
        self.values[logical_id] = value
        if arn is not None:
            self.values[f"{logical_id}.Arn"] = arn

    def resolve_document(self, value: Any) -> Any:
        """A policy document (nested lists and mappings) with its intrinsics resolved."""
        if isinstance(value, dict) and len(value) == 1 and _is_intrinsic(next(iter(value))):
            return self.resolve(value)
        if isinstance(value, dict):
            return {name: self.resolve_document(item) for name, item in value.items()}
        if isinstance(value, list):
            return [self.resolve_document(item) for item in value]
        return value

    def condition(self, name: str) -> bool:
        """A condition of the template: Fn::Not, Fn::Equals and Fn::Or/And of values."""
        return self._holds(self.conditions[name])

    def _holds(self, expression: Any) -> bool:
        if isinstance(expression, dict) and "Condition" in expression:
            return self.condition(expression["Condition"])
        if isinstance(expression, dict) and "Fn::Not" in expression:
            return not self._holds(expression["Fn::Not"][0])
        if isinstance(expression, dict) and "Fn::Equals" in expression:
            left, right = expression["Fn::Equals"]
            return self.resolve(left) == self.resolve(right)
        if isinstance(expression, dict) and "Fn::Or" in expression:
            return any(self._holds(part) for part in expression["Fn::Or"])
        if isinstance(expression, dict) and "Fn::And" in expression:
            return all(self._holds(part) for part in expression["Fn::And"])
        raise StackError(f"the local stack cannot evaluate the condition {expression!r}")

    def resolve(self, value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, dict) and "Ref" in value:
            return self._lookup(value["Ref"])
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            return self._lookup(f"{logical_id}.{attribute}")
        if isinstance(value, dict) and "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            # A list parameter (!Ref of a CommaDelimitedList) holds its items comma-joined.
            parts = self.resolve(items).split(",") if isinstance(items, dict) else items
            return str(delimiter).join(self.resolve(part) for part in parts)
        if isinstance(value, dict) and "Fn::If" in value:
            name, then, otherwise = value["Fn::If"]
            return self.resolve(then if self.condition(name) else otherwise)
        if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            text = value["Fn::Sub"]
            if text.startswith(API_URL_SUB) and self.api_url:  # the gateway serves the HttpApi
                text = self.api_url + text.removeprefix(API_URL_SUB)
            return re.sub(r"\$\{([^}!]+)\}", lambda m: self._lookup(m[1]), text)
        raise StackError(f"the local stack cannot resolve {value!r} from template.yaml")

    def _lookup(self, name: str) -> str:
        try:
            return self.values[name]
        except KeyError:
            raise StackError(
                f"template.yaml refers to {name}, unknown to the local stack"
            ) from None


def _is_intrinsic(name: str) -> bool:
    return name == "Ref" or name.startswith("Fn::")


def local_functions(template: dict[str, Any], values: TemplateValues) -> list[LocalFunction]:
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    functions = []
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = resource["Properties"]
        retries = (props.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", 2)
        # SAM appends the function's own layers to the global ones.
        layer_refs = [*(globals_.get("Layers") or []), *(props.get("Layers") or [])]
        layers = tuple((ref["Ref"], values.resolve(ref)) for ref in layer_refs)
        functions.append(
            LocalFunction(
                logical_id=logical_id,
                name=function_name(logical_id),
                handler=props["Handler"],
                timeout_seconds=int(
                    values.resolve(props.get("Timeout", globals_.get("Timeout", 3)))
                ),
                memory_mb=int(
                    values.resolve(props.get("MemorySize", globals_.get("MemorySize", 128)))
                ),
                max_retries=int(retries),
                layers=layers,
            )
        )
    return functions


def function_environment(template: dict[str, Any], values: TemplateValues) -> dict[str, str]:
    """Every variable the template gives any function (Globals merged with its own).

    The handlers share this process, hence one environment: the union. The
    template never gives one name two values; if it ever does, say so rather
    than let one function run with another's setting.
    """
    shared = ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    merged: dict[str, str] = {}
    origin: dict[str, str] = {}
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        own = (resource["Properties"].get("Environment") or {}).get("Variables") or {}
        variables = {**(shared.get("Variables") or {}), **own}
        for name, raw in variables.items():
            value = values.resolve(raw)
            if name in merged and merged[name] != value:
                raise StackError(
                    f"{name} is {merged[name]!r} for {origin[name]} but {value!r} for {logical_id}: "
                    "the local stack runs all functions in one process"
                )
            merged[name], origin[name] = value, logical_id
    return merged


# The task's credentials come from its task role (LocalStack._task_credentials).
TASK_PLATFORM_VARIABLES = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "POWERTOOLS_TRACE_DISABLED",
    "POWERTOOLS_METRICS_DISABLED",
)


def local_task_definition(
    values: TemplateValues, logical_id: str, resource: dict[str, Any]
) -> LocalTaskDefinition:
    """A single-container task definition of the template, resolved for the local stack.

    The image's Python is replaced by this venv's, started with -S: like the
    image's, it brings none of this venv's packages, so the task runs only on
    what the bootstrap unpacks from the built function and layers.
    """
    props = resource["Properties"]
    (container,) = props["ContainerDefinitions"]
    argv = [*container.get("EntryPoint", []), *container.get("Command", [])]
    if argv and argv[0] == IMAGE_PYTHON:
        argv = [IMAGE_PYTHON, "-S", *argv[1:]]
    environment = {
        item["Name"]: values.resolve(item["Value"]) for item in container.get("Environment", [])
    }
    roles = ("TaskRoleArn", "ExecutionRoleArn")
    return LocalTaskDefinition(
        arn=values.resolve({"Ref": logical_id}),
        family=values.resolve(props["Family"]),
        container=container["Name"],
        argv=tuple(values.resolve(part) for part in argv),
        environment=environment,
        roles=tuple(values.resolve(props[name]) for name in roles if name in props),
    )


# -- the stack ------------------------------------------------------------------------------


@dataclass
class StackInfo:
    """What stack.json holds: how clients (CLI, tests, the demo) reach a running stack."""

    api_url: str
    token: str
    aws_endpoint_url: str
    region: str
    bucket: str
    table: str
    pid: int
    lambda_endpoint_url: str
    # The key every request to aws_endpoint_url and lambda_endpoint_url is signed with.
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    functions: dict[str, str] = field(default_factory=dict)
    demo_database_url: str | None = None
    demo_postgres_pid: int | None = None

    def as_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        if self.demo_database_url is None:
            del data["demo_database_url"], data["demo_postgres_pid"]
        return data


class LocalStack:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        state_dir: Path = DEFAULT_STATE_DIR,
        demo_size_mb: int | None = None,
        demo_pitr: bool = False,
        region: str = REGION,
        parameters: dict[str, str] | None = None,
        shutdown_grace: float = SHUTDOWN_GRACE_SECONDS,
        announce: Callable[[str], None] = log.info,
        enforce_iam: bool = True,
        template: Path = TEMPLATE,
    ) -> None:
        self.host = host
        self.port = port
        self.state_dir = Path(state_dir)
        self.demo_size_mb = demo_size_mb
        self.demo_pitr = demo_pitr
        self.region = region
        self.shutdown_grace = shutdown_grace
        self.announce = announce
        self.template = load_template(template)
        self.values = TemplateValues(self.template, region, parameters)
        self._know_api_url()
        self.info: StackInfo | None = None
        # A new key per start: what another user of the machine could not have seen.
        self.key = StackKey.generate()
        self.enforce_iam = enforce_iam
        # The owner's key and, once created, each role's session (pgbackups_local.iam).
        self.identities = Identities(owner=self.key, enforced=enforce_iam)
        # What each function's cold start sees: its role's credentials.
        self.role_environments: dict[str, dict[str, str]] = {}
        self._stops: dict[str, list[Callable[[], None]]] = {}
        self._gateway: Any = None
        self._wrote_stack_file = False

    @property
    def stack_file(self) -> Path:
        return self.state_dir / STACK_FILE

    # -- start -----------------------------------------------------------------------

    def start(self) -> StackInfo:
        """Bring everything up and write stack.json; on any failure, undo and raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        tools = pgtools_dir()
        self._claim_state_dir()
        moto_url = self._start_moto()
        resources = self._create_resources(moto_url)
        if self.enforce_iam:
            self._create_roles(moto_url)
        functions = local_functions(self.template, self.values)
        # GetFunction's packages: what `make build` made (tools is its PgToolsLayer).
        code = CodePackages(tools.parent, self.state_dir / "code")
        runtime = LambdaRuntime(
            functions,
            REPO / "functions",
            self.region,
            identities=self.identities,
            code=code,
            environments=self.role_environments,
        )
        runtime.start()
        self._on_stop("workers", lambda: runtime.drain(self.shutdown_grace))
        self._on_stop("lambda endpoint", runtime.stop_endpoint)
        ecs = self._start_ecs()
        self._configure_environment(moto_url, runtime.url, tools, ecs)
        # Cold-start the functions the gateway does not load, so a bad setting fails now.
        runtime.warm(*(f.name for f in functions if self._is_background(f.logical_id)))
        api_url = self._start_gateway()
        self._start_rules(runtime, functions)
        self._keep_slots()
        self._start_alert_paths(moto_url, runtime, functions)
        self.info = StackInfo(
            api_url=api_url,
            token=resources["token"],
            aws_endpoint_url=moto_url,
            region=self.region,
            bucket=resources["bucket"],
            table=resources["table"],
            pid=os.getpid(),
            lambda_endpoint_url=runtime.url,
            aws_access_key_id=self.key.access_key_id,
            aws_secret_access_key=self.key.secret_access_key,
            functions={f.logical_id: f.name for f in functions},
        )
        if self.demo_size_mb is not None:
            self._start_demo(api_url, resources["token"])
        self._write_stack_file()
        return self.info

    def _on_stop(self, what: str, action: Callable[[], None]) -> None:
        assert what in STOP_ORDER, what
        self._stops.setdefault(what, []).append(action)

    def _claim_state_dir(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.stack_file.exists():
            with contextlib.suppress(ValueError, OSError):
                pid = int(json.loads(self.stack_file.read_text()).get("pid", 0))
                if pid != os.getpid() and process_alive(pid):
                    raise StackError(
                        f"a local stack (pid {pid}) is already running with state dir "
                        f"{self.state_dir}; stop it first or pass another --state-dir"
                    )
            self.stack_file.unlink(missing_ok=True)  # left over by a killed stack
        self._clean_leftovers()

    def _clean_leftovers(self) -> None:
        """What a killed stack left (pgbackups_local.leftovers): stopped, removed or told."""
        pid = leftovers.stop_left_demo_server(self.state_dir)
        if pid is not None:
            self.announce(f"stopped the demo PostgreSQL (pid {pid}) a killed stack left")
        if count := leftovers.remove_task_folders(self.state_dir):
            self.announce(f"removed {count} Fargate task folder(s) a killed stack left")
        for slot in leftovers.left_slots(self.state_dir):
            self.announce(
                f"a killed stack left the replication slot {slot.slot} on {slot.server}: "
                f"the server keeps WAL for it until it is dropped: {slot.drop_command()}"
            )

    def _start_moto(self) -> str:
        # The `local` extra: moto's own server, with the signature check in front, in a
        # process of its own (pgbackups_local.moto_process says why). A session of its
        # own, so Ctrl-C reaches the stack, which stops moto last.
        process = subprocess.Popen(
            [sys.executable, "-m", "pgbackups_local.moto_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stdin is not None and process.stdout is not None

        def stop() -> None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # type: ignore[union-attr]
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()  # type: ignore[union-attr]

        self._on_stop("moto", stop)
        key = {
            "access_key_id": self.key.access_key_id,
            "secret_access_key": self.key.secret_access_key,
            "enforce_iam": self.enforce_iam,
        }
        process.stdin.write(json.dumps(key).encode() + b"\n")
        process.stdin.flush()
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise StackError(f"moto did not start (exit code {process.poll()})")
        return f"http://127.0.0.1:{int(port)}"

    def _client(self, service: str, endpoint: str) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id=self.key.access_key_id,
            aws_secret_access_key=self.key.secret_access_key,
            region_name=self.region,
        ).client(service, endpoint_url=endpoint)

    def _know_api_url(self) -> None:
        """The gateway's URL before the functions' environment is made (the dispatcher's
        alerts link to the dashboard): --port 0 takes a free port now."""
        if self.port == 0:
            from pgbackups_local.postgres import free_port

            self.port = free_port()
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host  # noqa: S104
        self.values.api_url = f"http://{host}:{self.port}"

    def _create_resources(self, moto_url: str) -> dict[str, str]:
        """The template's storage, bus and secrets, on moto; returns what stack.json needs."""
        created: dict[str, str] = {}
        creators = {
            "AWS::DynamoDB::Table": self._create_table,
            "AWS::S3::Bucket": self._create_bucket,
            "AWS::Events::EventBus": self._create_event_bus,
            "AWS::SecretsManager::Secret": self._create_secret,
            "AWS::SNS::Topic": self._create_topic,
        }
        arns = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{{}}",
            "AWS::S3::Bucket": "arn:aws:s3:::{}",
            "AWS::Events::EventBus": f"arn:aws:events:{self.region}:{ACCOUNT_ID}:event-bus/{{}}",
            "AWS::SecretsManager::Secret": "{}",  # its !Ref is its ARN
            "AWS::SNS::Topic": "{}",  # likewise
        }
        for kind, create in creators.items():
            for logical_id, resource in resources_of_type(self.template, kind).items():
                if "Condition" in resource and not self.values.condition(resource["Condition"]):
                    continue  # as CloudFormation: not created, and no !Ref reaches it
                ref = create(moto_url, logical_id, resource.get("Properties") or {}, created)
                self.values.set_ref(logical_id, ref, arns[kind].format(ref))
        for logical_id in resources_of_type(self.template, "AWS::Serverless::Function"):
            name = function_name(logical_id)
            arn = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"
            self.values.set_ref(logical_id, name, arn)
        for logical_id in resources_of_type(self.template, "AWS::IAM::Role"):
            name = generated_name(logical_id)
            self.values.set_ref(logical_id, name, f"arn:aws:iam::{ACCOUNT_ID}:role/{name}")
        # !Ref of a layer is its version's ARN; of a cluster its name; of a task
        # definition its revision's ARN.
        for logical_id, layer in resources_of_type(
            self.template, "AWS::Serverless::LayerVersion"
        ).items():
            name = self.values.resolve(layer["Properties"].get("LayerName", logical_id))
            self.values.set_ref(logical_id, layer_version_arn(self.region, name))
        for logical_id, cluster in resources_of_type(self.template, "AWS::ECS::Cluster").items():
            props = cluster.get("Properties") or {}
            name = self.values.resolve(props.get("ClusterName") or generated_name(logical_id))
            self.values.set_ref(
                logical_id, name, f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:cluster/{name}"
            )
        for logical_id, definition in resources_of_type(
            self.template, "AWS::ECS::TaskDefinition"
        ).items():
            family = self.values.resolve(definition["Properties"]["Family"])
            arn = f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:task-definition/{family}:1"
            self.values.set_ref(logical_id, arn)
        return created

    def _create_roles(self, moto_url: str) -> None:
        """A role per function and per task role of the template, with its policies, and
        a session of each: the credentials that function (or task) runs with."""
        roles = []
        resolve = self.values.resolve_document
        try:
            for logical_id in resources_of_type(self.template, "AWS::Serverless::Function"):
                documents = function_policies(self.template, logical_id, resolve)
                name = f"{generated_name(logical_id)}-role"
                roles.append(RolePolicies(logical_id, name, tuple(documents)))
            for definition in resources_of_type(self.template, "AWS::ECS::TaskDefinition").values():
                task_role = definition["Properties"].get("TaskRoleArn")
                if task_role is None:
                    continue
                role_id = task_role["Fn::GetAtt"][0]
                documents = role_policies(self.template, role_id, resolve)
                roles.append(RolePolicies(role_id, generated_name(role_id), tuple(documents)))
        except PolicyError as error:
            raise StackError(str(error)) from None
        iam, sts = self._client("iam", moto_url), self._client("sts", moto_url)
        owner = f"arn:aws:iam::{ACCOUNT_ID}:user/{OWNER_USER}"
        for role in roles:
            session = create_role_session(iam, sts, role, owner)
            self.identities.add_session(session, role.documents)
            self.role_environments[role.logical_id] = session.environment()

    def _task_credentials(self) -> dict[str, str]:
        """What ECS gives a task through its task role: that role's session (the owner's
        key when IAM is not enforced)."""
        for definition in resources_of_type(self.template, "AWS::ECS::TaskDefinition").values():
            task_role = definition["Properties"].get("TaskRoleArn")
            if task_role is not None and task_role["Fn::GetAtt"][0] in self.role_environments:
                return self.role_environments[task_role["Fn::GetAtt"][0]]
        return self.key.environment()

    def _create_table(
        self, moto_url: str, logical_id: str, props: dict[str, Any], created: dict[str, str]
    ) -> str:
        name = props.get("TableName") or generated_name(logical_id)
        self._client("dynamodb", moto_url).create_table(**table_definition(self.template, name))
        created["table"] = name
        return str(name)

    def _create_bucket(
        self, moto_url: str, logical_id: str, props: dict[str, Any], created: dict[str, str]
    ) -> str:
        name = str(props.get("BucketName") or generated_name(logical_id))
        s3 = self._client("s3", moto_url)
        # Object Lock can only be enabled when the bucket is created (as CloudFormation does).
        locked = props.get("ObjectLockEnabled", False)
        if isinstance(locked, dict) and "Fn::If" in locked:
            condition, when_true, otherwise = locked["Fn::If"]
            locked = when_true if self.values.holds(condition) else otherwise
        s3.create_bucket(
            Bucket=name,
            CreateBucketConfiguration={"LocationConstraint": self.region},
            ObjectLockEnabledForBucket=locked is True,
        )
        # What changes the bucket's behaviour for the code: versioning (deletions are
        # soft), encryption, no public access. The lifecycle rules only act after
        # days and the TLS-only policy cannot hold on a plain-HTTP local endpoint.
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration=props["VersioningConfiguration"]
            )
        if "BucketEncryption" in props:
            # CloudFormation's ServerSideEncryptionByDefault is the API's Apply… one.
            rules = [
                {
                    (
                        "ApplyServerSideEncryptionByDefault"
                        if k == "ServerSideEncryptionByDefault"
                        else k
                    ): v
                    for k, v in rule.items()
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(
                Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules}
            )
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        created["bucket"] = name
        return name

    def _create_event_bus(
        self, moto_url: str, logical_id: str, props: dict[str, Any], created: dict[str, str]
    ) -> str:
        name = self.values.resolve(props["Name"]) if "Name" in props else generated_name(logical_id)
        self._client("events", moto_url).create_event_bus(Name=name)
        created["event_bus"] = name
        return name

    def _create_secret(
        self, moto_url: str, logical_id: str, props: dict[str, Any], created: dict[str, str]
    ) -> str:
        """A secret of the template; GenerateSecretString becomes Secrets Manager's own
        GetRandomPassword with the same settings (48 characters, no punctuation)."""
        sm = self._client("secretsmanager", moto_url)
        name = self.values.resolve(props["Name"]) if "Name" in props else generated_name(logical_id)
        generate = dict(props.get("GenerateSecretString") or {})
        if "SecretStringTemplate" in generate or "GenerateStringKey" in generate:
            raise StackError(f"{logical_id}: JSON secret templates are not supported locally")
        if "SecretString" in props:  # a value given at deploy time (AlertWebhookUrl)
            value = self.values.resolve(props["SecretString"])
        else:
            value = sm.get_random_password(**generate)["RandomPassword"]
        arn = sm.create_secret(
            Name=name, Description=str(props.get("Description", "")), SecretString=value
        )["ARN"]
        if logical_id == TOKEN_SECRET:
            created["token"] = value
        return str(arn)  # !Ref of a secret is its ARN

    def _create_topic(
        self, moto_url: str, logical_id: str, props: dict[str, Any], created: dict[str, str]
    ) -> str:
        """An SNS topic; what is published to it is printed in the log (_start_alert_paths)."""
        name = self.values.resolve(props.get("TopicName") or generated_name(logical_id))
        arn = self._client("sns", moto_url).create_topic(Name=name)["TopicArn"]
        return str(arn)  # !Ref of a topic is its ARN

    def _start_alert_paths(
        self, moto_url: str, runtime: LambdaRuntime, functions: list[LocalFunction]
    ) -> None:
        """The functions' EventBridgeRule events, and the topics printed in the log."""
        from pgbackups_local.alerts import print_topic, route_event_rule

        events, sqs = self._client("events", moto_url), self._client("sqs", moto_url)
        relays = []
        for function in functions:
            props = self.template["Resources"][function.logical_id]["Properties"]
            for event_name, event in (props.get("Events") or {}).items():
                if event.get("Type") != "EventBridgeRule":
                    continue
                rule = event["Properties"]
                relays.append(
                    route_event_rule(
                        events,
                        sqs,
                        rule_name=f"pgbackups-{STAGE}-{function.logical_id}{event_name}",
                        bus_name=self.values.resolve(rule.get("EventBusName", "default")),
                        pattern=rule["Pattern"],
                        invoke=functools.partial(runtime.submit, function),
                    )
                )
        sns = self._client("sns", moto_url)
        for logical_id in resources_of_type(self.template, "AWS::SNS::Topic"):
            relays.append(
                print_topic(
                    sns,
                    sqs,
                    topic_arn=self.values.resolve({"Ref": logical_id}),
                    queue_name=f"pgbackups-{STAGE}-{logical_id}-log",
                    show=self.announce,
                )
            )
        for relay in relays:
            relay.start()
            self._on_stop("rules", relay.stop)

    def _is_background(self, logical_id: str) -> bool:
        """Functions run by invocations and rules rather than by the gateway."""
        props = self.template["Resources"][logical_id]["Properties"]
        events = (props.get("Events") or {}).values()
        behind_api = any(event.get("Type") == "HttpApi" for event in events)
        is_authorizer = any(
            authorizer.get("FunctionArn") == {"Fn::GetAtt": [logical_id, "Arn"]}
            for api in resources_of_type(self.template, "AWS::Serverless::HttpApi").values()
            for authorizer in api["Properties"]["Auth"]["Authorizers"].values()
        )
        return not behind_api and not is_authorizer

    def _start_ecs(self) -> EcsRuntime:
        """RunTask of the template's task definitions, run as local processes."""
        clusters = resources_of_type(self.template, "AWS::ECS::Cluster")
        definitions = [
            local_task_definition(self.values, logical_id, resource)
            for logical_id, resource in resources_of_type(
                self.template, "AWS::ECS::TaskDefinition"
            ).items()
        ]
        (cluster_id,) = clusters
        ecs = EcsRuntime(
            cluster=self.values.resolve({"Ref": cluster_id}),
            definitions=definitions,
            platform_environment={},  # filled by _configure_environment
            tasks_dir=self.state_dir / "tasks",
            region=self.region,
            account=ACCOUNT_ID,
            identities=self.identities,
        )
        ecs.start()
        self._on_stop("tasks", lambda: ecs.drain(self.shutdown_grace))
        self._on_stop("ecs endpoint", ecs.stop_endpoint)
        return ecs

    def _configure_environment(
        self, moto_url: str, lambda_url: str, tools: Path, ecs: EcsRuntime
    ) -> None:
        """This process's environment is the functions' (they all run here)."""
        env = function_environment(self.template, self.values)
        env["PGTOOLS_DIR"] = str(tools)  # /opt on Lambda: the same layer, built here
        # Each function gets its own role's credentials at its cold start; with IAM
        # enforced, the process itself has none (a client built later would fail loudly
        # rather than act as the owner).
        dropped = ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"]
        if self.enforce_iam:
            dropped += ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        for name in dropped:
            os.environ.pop(name, None)
        for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_")]:
            del os.environ[name]
        if not self.enforce_iam:
            env.update(self.key.environment())
        env.update(
            AWS_REGION=self.region,
            AWS_DEFAULT_REGION=self.region,
            AWS_ENDPOINT_URL=moto_url,
            AWS_ENDPOINT_URL_LAMBDA=lambda_url,
            # Never a real account's settings: no ~/.aws files, the stack's own config.
            AWS_CONFIG_FILE=str(self._write_aws_config()),
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            # No X-Ray daemon and no CloudWatch here; logs stay on.
            POWERTOOLS_TRACE_DISABLED="true",
            POWERTOOLS_METRICS_DISABLED="true",
        )
        # What ECS gives a task beyond its definition: the region and, through the
        # task role, credentials (here the stack's), and the endpoints.
        ecs.platform_environment.update(
            {name: env[name] for name in TASK_PLATFORM_VARIABLES if name in env},
            **self._task_credentials(),
            PATH=os.environ.get("PATH", "/usr/bin:/bin"),
            LANG="C.UTF-8",
        )
        # Outside AWS the server binaries' folders reach the tasks as they reach this process.
        if PGSERVER_DIRS_ENV in os.environ:
            ecs.platform_environment[PGSERVER_DIRS_ENV] = os.environ[PGSERVER_DIRS_ENV]
        env["AWS_ENDPOINT_URL_ECS"] = ecs.url
        os.environ.update(env)

    def _write_aws_config(self) -> Path:
        """S3 as over https: moto listens on http, where botocore would compute a SHA-256
        of every uploaded part for its signature; to S3 over https it sends streamed
        parts unsigned (TLS and the CRC32 checksum header protect them). The functions
        and tasks here do what they do on AWS, and no more."""
        path = self.state_dir / "aws-config"
        path.write_text("[default]\ns3 =\n    payload_signing_enabled = false\n")
        return path

    def _start_gateway(self) -> str:
        from pgbackups_local.gateway import Gateway

        gateway = Gateway(
            self.host, self.port, REPO / "functions", self.template, self.role_environments
        )
        try:
            gateway.start()
        except OSError as error:
            raise StackError(
                f"cannot serve the HTTP API on {self.host}:{self.port}: {error.strerror}; "
                "pass another --port (0 picks a free one)"
            ) from None
        self._on_stop("gateway", gateway.stop)
        self._gateway = gateway
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host  # noqa: S104
        return f"http://{host}:{gateway.port}"

    def _start_rules(self, runtime: LambdaRuntime, functions: list[LocalFunction]) -> None:
        for function in functions:
            props = self.template["Resources"][function.logical_id]["Properties"]
            for event_name, event in (props.get("Events") or {}).items():
                if event.get("Type") != "Schedule":
                    continue
                rule_name = f"pgbackups-{STAGE}-{function.logical_id}{event_name}"

                def fire(
                    at: Any, function: LocalFunction = function, rule: str = rule_name
                ) -> None:
                    log.info("%s: invoking %s for %s", rule, function.name, at.isoformat())
                    runtime.submit(function, scheduled_event(at, self.region, rule))

                expression = self.values.resolve(event["Properties"]["Schedule"])
                rule = HourlyRule(expression, fire, name=rule_name)
                rule.start()
                self._on_stop("rules", rule.stop)

    def _keep_slots(self) -> None:
        """Note the replication slots continuous backups hold on the registered servers
        (the demo server is the stack's own), and drop them at a clean stop."""
        import boto3

        from pgbackups.postgres import slots, urls
        from pgbackups.settings import Settings
        from pgbackups.usecases.pitr import pitr_databases
        from pgbackups.wiring import build_services

        session = boto3.Session(
            aws_access_key_id=self.key.access_key_id,
            aws_secret_access_key=self.key.secret_access_key,
            region_name=self.region,
        )
        services = build_services(Settings.from_env(), session)

        def slot_of(database: str) -> str:
            state = services.pitr.get_state(database)
            if state is None:
                raise LookupError(f"{database} has no continuous backups")
            return state.replication_slot

        def current() -> list[leftovers.LeftSlot]:
            return [
                leftovers.LeftSlot(
                    database=database,
                    slot=slot_of(database),
                    server=urls.connection(services.secrets.replication_url(database)).redacted,
                )
                for database in pitr_databases(services)
                if database != DEMO_DATABASE
            ]

        def drop(database: str) -> None:
            slots.drop_slot(services.secrets.replication_url(database), slot_of(database))

        keeper = leftovers.SlotKeeper(self.state_dir, current, drop)
        keeper.start()
        self._on_stop("replication slots", keeper.drop_all)
        # A slot made by a request is noted before its answer: a kill right after it
        # still leaves the note.
        if self._gateway is not None:
            self._gateway.after_change = keeper.write_note

    def _start_demo(self, api_url: str, token: str) -> None:
        import requests

        from pgbackups_local import sample_data
        from pgbackups_local.postgres import EmbeddedPostgres

        assert self.info is not None and self.demo_size_mb is not None
        self.announce("starting the embedded PostgreSQL for the demo database")
        server = EmbeddedPostgres(name="demo")
        leftovers.note_demo_server(self.state_dir, server.root)

        def destroy() -> None:
            server.destroy()
            leftovers.forget_demo_server(self.state_dir)

        self._on_stop("demo PostgreSQL", destroy)
        server.init().start()
        self.info.demo_postgres_pid = int(
            (server.data_dir / "postmaster.pid").read_text().split()[0]
        )
        self.announce(f"filling `{DEMO_DATABASE}` with about {self.demo_size_mb} MB of sample data")
        data = sample_data.fill(server, DEMO_DATABASE, self.demo_size_mb)
        url = server.url(DEMO_DATABASE)
        response = requests.post(
            f"{api_url}/v1/databases",
            json={"name": DEMO_DATABASE, "url": url},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        if response.status_code != 201:
            raise StackError(
                f"registering the demo database failed: {response.status_code} {response.text}"
            )
        if self.demo_pitr:
            # The embedded server allows replication (wal_level = replica): enabling
            # starts the first base backup on the backup function.
            answer = requests.put(
                f"{api_url}/v1/databases/{DEMO_DATABASE}/pitr",
                json={"enabled": True},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            if answer.status_code != 200:
                raise StackError(f"enabling continuous backups failed: {answer.text}")
            self.announce(f"continuous backups enabled on `{DEMO_DATABASE}`")
        rows = ", ".join(f"{table} {count:,}" for table, count in data.rows.items())
        size_mb = data.size_bytes / 1024**2
        self.announce(f"registered `{DEMO_DATABASE}` ({size_mb:.0f} MB: {rows})")
        self.info.demo_database_url = url

    def _write_stack_file(self) -> None:
        assert self.info is not None
        staging = self.stack_file.with_suffix(".json.tmp")
        staging.unlink(missing_ok=True)
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            json.dump(self.info.as_json(), stream, indent=2)
            stream.write("\n")
        os.replace(staging, self.stack_file)
        self._wrote_stack_file = True

    # -- stop --------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop in STOP_ORDER whatever was started; every step runs even if one fails."""
        for what in STOP_ORDER:
            for action in reversed(self._stops.pop(what, [])):
                log.debug("stopping %s", what)
                try:
                    action()
                except Exception:
                    log.exception("stopping %s failed", what)
        if self._wrote_stack_file:
            self.stack_file.unlink(missing_ok=True)
            self._wrote_stack_file = False

    @contextlib.contextmanager
    def running(self) -> Iterator[StackInfo]:
        info = self.start()
        try:
            yield info
        finally:
            self.stop()
