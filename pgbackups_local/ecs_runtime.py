"""The local stack's ECS: RunTask of the template's task definitions, as subprocesses.

moto records ECS tasks but cannot run them, so boto3's ECS client reaches this
endpoint instead (AWS_ENDPOINT_URL_ECS, the JSON 1.1 protocol ECS speaks). A
task runs its container's own entry point and command from template.yaml, with
this venv's Python in place of the image's /var/lang/bin/python3: the one-line
loader downloads the backup function's package from the local Lambda endpoint,
and task_bootstrap.py unpacks the built function and layers and runs the
backup, exactly as on Fargate. Only what a task needs from its platform is
added: the AWS endpoints and the stack's credentials (ECS gives a task role's).

RunTask answers at once; DescribeTasks reports RUNNING, then STOPPED with the
container's exit code. Stopping the stack sends SIGTERM to the running tasks
(what ECS does), then SIGKILL after the grace period.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pgbackups.postgres.cluster import ClusterFailed, check_reachable, server_user
from pgbackups_local.iam import AccessDenied, Identities
from pgbackups_local.leftovers import OUTSIDE_TASK_PREFIX
from pgbackups_local.signatures import SignatureRefused, StackKey, verify

log = logging.getLogger("pgbackups.local")

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
IMAGE_PYTHON = "/var/lang/bin/python3"


class EcsError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LocalTaskDefinition:
    """One AWS::ECS::TaskDefinition of the template (single container), resolved."""

    arn: str
    family: str
    container: str
    argv: tuple[str, ...]  # entry point + command
    environment: dict[str, str]
    # The task role's and the execution role's ARNs: RunTask passes them to ECS.
    roles: tuple[str, ...] = ()

    def matches(self, name: str) -> bool:
        return name in (self.arn, self.family, f"{self.family}:{self.arn.rsplit(':', 1)[1]}")


@dataclass
class LocalTask:
    arn: str
    definition: LocalTaskDefinition
    process: subprocess.Popen[bytes]
    log_path: Path
    work_dir: Path
    started_by: str = ""
    created_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        code = self.process.poll()
        container: dict[str, Any] = {
            "name": self.definition.container,
            "lastStatus": "RUNNING" if code is None else "STOPPED",
        }
        if code is not None:
            container["exitCode"] = code
        return {
            "taskArn": self.arn,
            "taskDefinitionArn": self.definition.arn,
            "lastStatus": container["lastStatus"],
            "desiredStatus": container["lastStatus"],
            "launchType": "FARGATE",
            "startedBy": self.started_by,
            "containers": [container],
        }


class EcsRuntime:
    """RunTask / DescribeTasks / StopTask for one cluster, on 127.0.0.1."""

    def __init__(
        self,
        cluster: str,
        definitions: list[LocalTaskDefinition],
        platform_environment: dict[str, str],
        tasks_dir: Path,
        region: str,
        account: str,
        identities: Identities,
    ) -> None:
        self.identities = identities
        self.cluster = cluster
        self.cluster_arn = f"arn:aws:ecs:{region}:{account}:cluster/{cluster}"
        self.definitions = definitions
        self.platform_environment = platform_environment
        self.tasks_dir = tasks_dir
        self.tasks: dict[str, LocalTask] = {}
        self._lock = threading.Lock()
        self._accepting = True
        self._server: ThreadingHTTPServer | None = None

    # -- the API ---------------------------------------------------------------

    def call(self, caller: StackKey, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        if operation == "RunTask":
            definition = next(
                (d for d in self.definitions if d.matches(request.get("taskDefinition", ""))), None
            )
            if definition is not None:
                # RunTask on the definition; passing its roles to ECS needs iam:PassRole.
                self.identities.authorize(caller, "ecs:RunTask", [definition.arn])
                self.identities.authorize(caller, "iam:PassRole", definition.roles)
            return self.run_task(request)
        self.identities.authorize(caller, f"ecs:{operation}", ["*"])
        if operation == "DescribeTasks":
            self._check_cluster(request.get("cluster", "default"))
            found = [self.tasks[a].describe() for a in request.get("tasks", []) if a in self.tasks]
            return {"tasks": found, "failures": []}
        if operation == "StopTask":
            task = self.tasks.get(request.get("task", ""))
            if task is None:
                raise EcsError("InvalidParameterException", "The referenced task was not found.")
            _terminate(task.process)
            return {"task": task.describe()}
        raise EcsError("UnknownOperationException", f"the local ECS does not do {operation}")

    def _check_cluster(self, name: str) -> None:
        if name not in (self.cluster, self.cluster_arn):
            raise EcsError("ClusterNotFoundException", "Cluster not found.")

    def run_task(self, request: dict[str, Any]) -> dict[str, Any]:
        self._check_cluster(request.get("cluster", "default"))
        name = request.get("taskDefinition", "")
        definition = next((d for d in self.definitions if d.matches(name)), None)
        if definition is None:
            raise EcsError("ClientException", f"Unable to describe task definition {name}.")
        if request.get("launchType", "FARGATE") != "FARGATE":
            raise EcsError("InvalidParameterException", "the task definition is for FARGATE")
        network = (request.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        if not network.get("subnets"):
            raise EcsError(
                "InvalidParameterException",
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            )
        environment = dict(definition.environment)
        for override in (request.get("overrides") or {}).get("containerOverrides", []):
            if override.get("name") != definition.container:
                raise EcsError(
                    "InvalidParameterException",
                    f"Override for container named {override.get('name')} is not a container "
                    "in the TaskDefinition.",
                )
            environment.update({e["name"]: e["value"] for e in override.get("environment", [])})
        if int(request.get("count", 1)) != 1:
            raise EcsError("InvalidParameterException", "the local ECS runs one task at a time")
        with self._lock:
            if not self._accepting:
                raise EcsError("ServerException", "the local stack is shutting down")
            task = self._spawn(definition, environment, str(request.get("startedBy", "")))
            self.tasks[task.arn] = task
        log.info("ECS RunTask: started %s (pid %d)", task.arn, task.process.pid)
        return {"tasks": [task.describe()], "failures": []}

    def _spawn(
        self, definition: LocalTaskDefinition, environment: dict[str, str], started_by: str
    ) -> LocalTask:
        task_id = uuid.uuid4().hex
        arn = self.cluster_arn.replace(":cluster/", ":task/") + f"/{task_id}"
        work_dir = self._work_dir(task_id)
        # The container's writable volume: where the bootstrap unpacks the code.
        environment = {
            **environment,
            "PGBACKUPS_TASK_DIR": str(work_dir),
            "TMPDIR": str(work_dir),
        }
        argv = [sys.executable if part == IMAGE_PYTHON else part for part in definition.argv]
        log_path = self.tasks_dir / f"{task_id}.log"
        with log_path.open("wb") as output:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**self.platform_environment, **environment},
                cwd=work_dir,
                start_new_session=True,
            )
        task = LocalTask(arn, definition, process, log_path, work_dir, started_by)
        threading.Thread(target=self._reap, args=(task,), daemon=True).start()
        return task

    def _work_dir(self, task_id: str) -> Path:
        """The task's writable folder, in the state dir's tasks/ when it can be.

        A task that starts PostgreSQL runs it as an unprivileged user (the task runs as
        root, as on Fargate, and PostgreSQL refuses root), who must reach the server
        unpacked in this folder: on Fargate it is under /tmp. A state dir in a private
        folder (a 0700 home, pytest's temp folder) is out of that user's reach: the
        folder then goes to the system's temp folder, linked from tasks/ so that the
        next start removes it if this stack is killed (leftovers.remove_task_folders).
        """
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        try:
            # Checks the folders above the task's: tasks/ and every parent.
            check_reachable(self.tasks_dir / task_id, server_user())
        except ClusterFailed:
            folder = Path(tempfile.mkdtemp(prefix=f"{OUTSIDE_TASK_PREFIX}{task_id[:8]}-"))
            (self.tasks_dir / folder.name).symlink_to(folder, target_is_directory=True)
            return folder
        return Path(tempfile.mkdtemp(prefix=f"task-{task_id[:8]}-", dir=self.tasks_dir))

    def _reap(self, task: LocalTask) -> None:
        code = task.process.wait()
        tail = task.log_path.read_text(errors="replace").strip().splitlines()[-5:]
        level = logging.INFO if code == 0 else logging.WARNING
        log.log(level, "ECS task %s stopped (exit %d): %s", task.arn, code, " | ".join(tail))
        shutil.rmtree(task.work_dir, ignore_errors=True)
        link = self.tasks_dir / task.work_dir.name
        if link.is_symlink():
            link.unlink()

    def drain(self, grace_seconds: float) -> None:
        """Stop taking tasks; SIGTERM the running ones, SIGKILL after the grace period."""
        with self._lock:
            self._accepting = False
            running = [t for t in self.tasks.values() if t.process.poll() is None]
        for task in running:
            _terminate(task.process)
        deadline = time.monotonic() + grace_seconds
        for task in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                task.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            if task.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(task.process.pid, signal.SIGKILL)
                task.process.wait()

    # -- the endpoint ----------------------------------------------------------

    def start(self) -> None:
        runtime = self

        class Handler(EcsRequestHandler):
            ecs = runtime

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, name="ecs-endpoint", daemon=True
        ).start()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop_endpoint(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)


class EcsRequestHandler(BaseHTTPRequestHandler):
    ecs: EcsRuntime
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("ecs endpoint: " + format, *args)

    def _reply(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        target = self.headers.get("X-Amz-Target", "")
        raw = self.rfile.read(length) if length else b""
        try:
            # Only the stack's owner may start tasks: requests signed with its key.
            caller = verify(
                "POST", self.path, dict(self.headers.items()), lambda: raw, self.ecs.identities
            )
        except SignatureRefused as refused:
            self.close_connection = True
            self._reply(403, {"__type": "AccessDeniedException", "message": str(refused)})
            return
        try:
            request = json.loads(raw or b"{}")
            if not target.startswith(TARGET_PREFIX):
                raise EcsError("UnknownOperationException", f"bad target {target!r}")
            answer = self.ecs.call(caller, target.removeprefix(TARGET_PREFIX), request)
        except AccessDenied as denied:
            self._reply(400, {"__type": "AccessDeniedException", "message": str(denied)})
            return
        except EcsError as error:
            self._reply(400, {"__type": error.code, "message": str(error)})
            return
        except ValueError:
            self._reply(400, {"__type": "SerializationException", "message": "bad JSON"})
            return
        self._reply(200, answer)
