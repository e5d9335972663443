"""Starting a backup's run: the backup function (async invoke) or an ECS Fargate task.

Both run the same `run_backup` on the same `BackupRequest`; see
pgbackups.domain.runners for which one a backup gets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pgbackups.domain.models import BackupRequest
from pgbackups.domain.runners import RunnerFailed

REQUEST_VARIABLE = "PGBACKUPS_BACKUP_REQUEST"
CODE_VARIABLE = "PGBACKUPS_TASK_CODE"
# RunTask refuses overrides whose JSON is over 8 KiB (quotes escaped and all).
MAX_OVERRIDES_BYTES = 8192


class LambdaRunner:
    """The backup function, invoked asynchronously (InvocationType Event): Lambda retries
    a failed start, and `run_backup` makes a retry of a started backup a no-op."""

    name = "lambda"

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self._lambda = lambda_client
        self._function = function_name

    def start(self, request: BackupRequest) -> None:
        self._lambda.invoke(
            FunctionName=self._function,
            InvocationType="Event",
            Payload=request.model_dump_json().encode(),
        )


class FargateRunner:
    """Runs the backup task (template.yaml's BackupTaskDefinition) with ECS RunTask.

    The task runs AWS's public Lambda Python image, so it gets the backup
    function's code and layers from here: their presigned locations (GetFunction,
    GetLayerVersionByArn, valid 10 minutes) go in the task's environment with the
    request. A run that starts PostgreSQL (`request.server_major`: a point-in-time
    restore, a drill) also gets that major's server layer, which no function has;
    the task unpacks it in its /opt/postgresql-<major>/. Nothing secret goes there:
    the task reads the database URL from Secrets Manager with its own role.
    """

    name = "fargate"

    def __init__(
        self,
        ecs: Any,
        lambda_client: Any,
        *,
        cluster: str,
        task_definition: str,
        container: str,
        subnets: tuple[str, ...],
        security_groups: tuple[str, ...],
        public_ip: bool,
        function_name: str,
        server_layers: Mapping[int, str] | None = None,
    ) -> None:
        self._ecs = ecs
        self._lambda = lambda_client
        self._cluster = cluster
        self._task_definition = task_definition
        self._container = container
        self._subnets = list(subnets)
        self._security_groups = list(security_groups)
        self._public_ip = public_ip
        self._function = function_name
        self._server_layers = dict(server_layers or {})

    def code_locations(self, server_major: int | None = None) -> dict[str, Any]:
        """The backup function's code and its layers, in Lambda's order, then the server
        layer of `server_major` when the run starts PostgreSQL: each package's URL and
        its CodeSha256, which the task checks before it runs anything."""
        server_layer = [] if server_major is None else [self._server_layer(server_major)]
        function = self._lambda.get_function(FunctionName=self._function)
        arns = [layer["Arn"] for layer in function["Configuration"].get("Layers", [])]
        layers = []
        for arn in [*arns, *server_layer]:
            content = self._lambda.get_layer_version_by_arn(Arn=arn)["Content"]
            layers.append({"location": content["Location"], "sha256": content["CodeSha256"]})
        code = {
            "location": function["Code"]["Location"],
            "sha256": function["Configuration"]["CodeSha256"],
        }
        return {"function": code, "layers": layers}

    def _server_layer(self, major: int) -> str:
        """The ARN of the layer holding PostgreSQL `major`'s server (PgServer<major>Layer)."""
        if major not in self._server_layers:
            deployed = ", ".join(str(m) for m in sorted(self._server_layers)) or "none"
            raise RunnerFailed(
                f"no PostgreSQL {major} server is deployed to start on Fargate "
                f"(server layers deployed: {deployed})"
            )
        return self._server_layers[major]

    def start(self, request: BackupRequest) -> None:
        environment = [
            {"name": REQUEST_VARIABLE, "value": request.model_dump_json()},
            {
                "name": CODE_VARIABLE,
                "value": json.dumps(self.code_locations(request.server_major)),
            },
        ]
        overrides = {"containerOverrides": [{"name": self._container, "environment": environment}]}
        size = len(json.dumps(overrides, separators=(",", ":")))
        if size > MAX_OVERRIDES_BYTES:
            raise RunnerFailed(
                f"the task's overrides take {size} bytes of JSON, over RunTask's 8 KiB limit"
            )
        network: dict[str, Any] = {
            "subnets": self._subnets,
            "assignPublicIp": "ENABLED" if self._public_ip else "DISABLED",
        }
        if self._security_groups:
            network["securityGroups"] = self._security_groups
        answer = self._ecs.run_task(
            cluster=self._cluster,
            taskDefinition=self._task_definition,
            launchType="FARGATE",
            count=1,
            startedBy=f"pgbackups-{request.backup_id}"[:36],
            # Idempotent: a retried start of the same backup does not run a second task.
            clientToken=request.backup_id,
            networkConfiguration={"awsvpcConfiguration": network},
            overrides=overrides,
        )
        failures = answer.get("failures") or []
        if failures or not answer.get("tasks"):
            reasons = "; ".join(f"{f.get('reason')} ({f.get('arn', '')})" for f in failures)
            raise RunnerFailed(f"ECS did not start the backup task: {reasons or 'no task'}")


class LambdaCaptureStarter:
    """Starts one WAL capture of one database: the capture function, asynchronously."""

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self._lambda = lambda_client
        self._function = function_name

    def start(self, database: str) -> None:
        self._lambda.invoke(
            FunctionName=self._function,
            InvocationType="Event",
            Payload=json.dumps({"database": database}).encode(),
        )
