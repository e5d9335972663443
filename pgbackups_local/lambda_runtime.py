"""The local stack's Lambda: the Invoke REST endpoint, a small worker pool, the hourly rule.

boto3's Lambda client reaches `LambdaRuntime` through AWS_ENDPOINT_URL_LAMBDA,
so the functions' unmodified `BackupInvoker` (and `pgbackups local dispatch`)
use the real Invoke API shape, `POST /2015-03-31/functions/<name>/invocations`:

- `X-Amz-Invocation-Type: Event` answers 202 at once and queues the call for
  the worker pool; a failing call is retried like Lambda's asynchronous
  invocations (the template's `EventInvokeConfig.MaximumRetryAttempts`).
- `RequestResponse` (the default) runs the handler and answers its result, or
  `X-Amz-Function-Error: Unhandled` with Lambda's error document.

Handlers run in this process: each function module (functions/<module>.py) is
imported once, on first use, like a cold start, and then shared by the
workers. `HourlyRule` plays EventBridge's `cron(M * * * ? *)` schedule.

Shutting down (`drain`) lets running invocations finish for a grace period,
then stops the pg_dump processes still running, so their backups end as
`error` (upload aborted, lock released) rather than being abandoned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import signal
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pgbackups.postgres.pgtools import launch
from pgbackups.postgres.streaming import DumpFailed
from pgbackups_local.code_packages import CodePackages
from pgbackups_local.functions import ACCOUNT_ID, LambdaContext, load_handler_module
from pgbackups_local.iam import AccessDenied, Identities
from pgbackups_local.signatures import SignatureRefused, verify

# A child of the functions' powertools logger, so both write to the same stream in order.
log = logging.getLogger("pgbackups.local")

WORKERS = 4
# Lambda waits about 1 then 2 minutes between retries of a failed async call;
# locally the point is to exercise the retry, not to wait.
RETRY_DELAYS_SECONDS = (1.0, 2.0)
# At shutdown, once pg_dump is stopped, how long the handlers get to record the outcome.
FINAL_WAIT_SECONDS = 30.0
# Lambda's own limit on a synchronous invocation's payload.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
FUNCTION_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)$")
LAYERS_PATH = "/2018-10-31/layers"
CODE_PATH = re.compile(r"^/code/(?P<key>[0-9a-f]{32})/(?P<logical_id>[A-Za-z0-9]+)\.zip$")


@dataclass(frozen=True)
class LocalFunction:
    """One AWS::Serverless::Function of the template, as the local stack runs it."""

    logical_id: str
    name: str  # the physical name the template's !Ref resolves to
    handler: str  # module.function, relative to functions/
    timeout_seconds: int
    memory_mb: int
    max_retries: int = 2
    # Its layers in Lambda's order: (logical id, layer version ARN).
    layers: tuple[tuple[str, str], ...] = ()

    def arn(self, region: str) -> str:
        return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{self.name}"


def layer_version_arn(region: str, layer_name: str, version: int = 1) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:layer:{layer_name}:{version}"


class FunctionNotFound(LookupError):
    pass


class ShuttingDown(RuntimeError):
    pass


class StackStopping(DumpFailed):
    """Raised instead of starting pg_dump once the stack is shutting down."""

    def __init__(self) -> None:
        super().__init__("stopped: the local stack was shut down before this backup started")


class TrackingLauncher:
    """The backup function's process launcher, remembering what it started.

    pgbackups.postgres.dump makes the launcher injectable; the local stack wraps the real
    one so that shutting down can stop pg_dump (the backup then records
    `error`) instead of leaving it orphaned.
    """

    def __init__(self, launcher: Callable[..., subprocess.Popen[bytes]] = launch) -> None:
        self._launch = launcher
        self._lock = threading.Lock()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._refusing = False

    def __call__(self, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._refusing:
                raise StackStopping()
            process = self._launch(argv, env)
            self._processes = [p for p in self._processes if p.poll() is None]
            self._processes.append(process)
            return process

    def stop_all(self) -> int:
        """Refuse new launches and terminate the running ones; returns how many."""
        with self._lock:
            self._refusing = True
            running = [p for p in self._processes if p.poll() is None]
        for process in running:
            # pg_dump runs in its own session (start_new_session): end the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        return len(running)


class LambdaRuntime:
    """Imports and runs the template's functions; serves the Invoke API on 127.0.0.1."""

    def __init__(
        self,
        functions: Sequence[LocalFunction],
        functions_dir: Path,
        region: str,
        *,
        identities: Identities,
        workers: int = WORKERS,
        code: CodePackages | None = None,
        environments: Mapping[str, Mapping[str, str]] | None = None,
        layers: Mapping[str, str] | None = None,
    ) -> None:
        """`identities`: who may call the Invoke endpoint, and what each may do;
        `environments`: by function logical id, what its cold start sees (its role's
        credentials); `layers`: every layer version of the template (ARN → logical
        id), the server layers included, which no function has (default: the
        functions' own)."""
        self.identities = identities
        self.environments = dict(environments or {})
        self.functions = {function.name: function for function in functions}
        # GetFunction / GetLayerVersionByArn: the built packages, at URLs only this
        # stack's clients learn (like Lambda's presigned locations).
        self.code = code
        self.code_key = uuid.uuid4().hex
        self.layers = dict(layers or {}) or {
            arn: logical_id for f in functions for logical_id, arn in f.layers
        }
        self.functions_dir = functions_dir
        self.region = region
        self.launcher = TrackingLauncher()
        self._modules: dict[str, ModuleType] = {}
        self._import_lock = threading.Lock()
        # Daemon threads: a handler that never returns cannot keep the process alive.
        self._queue: queue.Queue[tuple[LocalFunction, Any] | None] = queue.Queue()
        self._submit_lock = threading.Lock()
        self._accepting = True
        self._workers = [
            threading.Thread(target=self._work, name=f"lambda-worker-{n}", daemon=True)
            for n in range(workers)
        ]
        for worker in self._workers:
            worker.start()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the functions -------------------------------------------------------

    def function(self, name_or_arn: str) -> LocalFunction:
        """Lambda accepts a name, a full or partial ARN, each with a :qualifier."""
        name = name_or_arn.split(":function:", 1)[-1].split(":", 1)[0]
        try:
            return self.functions[name]
        except KeyError:
            raise FunctionNotFound(
                f"Function not found: arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"
            ) from None

    def module(self, function: LocalFunction) -> ModuleType:
        """functions/<module>.py, imported once (the cold start) with the stack's environment."""
        module_name = function.handler.rsplit(".", 1)[0]
        with self._import_lock:
            if module_name not in self._modules:
                try:
                    module = load_handler_module(
                        module_name, self.functions_dir, self.environments.get(function.logical_id)
                    )
                except FileNotFoundError as missing:
                    raise FunctionNotFound(f"no handler module at {missing}") from None
                services = getattr(module, "services", None)
                if services is not None and hasattr(services, "launcher"):
                    services.launcher = self.launcher
                self._modules[module_name] = module
            return self._modules[module_name]

    def warm(self, *names: str) -> None:
        """Cold-start these functions now, so a broken configuration fails at start-up."""
        for name in names:
            self.module(self.function(name))

    def run(self, function: LocalFunction, payload: Any) -> Any:
        handler = getattr(self.module(function), function.handler.rsplit(".", 1)[1])
        context = LambdaContext(
            function_name=function.name,
            timeout_seconds=function.timeout_seconds,
            memory_limit_in_mb=function.memory_mb,
            region=self.region,
        )
        return handler(payload, context)

    # -- asynchronous invocations --------------------------------------------

    def submit(self, function: LocalFunction, payload: Any) -> None:
        """Queue an asynchronous invocation (InvocationType Event)."""
        with self._submit_lock:
            if not self._accepting:
                raise ShuttingDown("the local stack is shutting down")
            self._queue.put((function, payload))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._run_async(*item)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _run_async(self, function: LocalFunction, payload: Any) -> None:
        for attempt in range(function.max_retries + 1):
            try:
                self.run(function, payload)
                return
            except Exception:
                log.exception(
                    "asynchronous invocation of %s failed (attempt %d of %d)",
                    function.name, attempt + 1, function.max_retries + 1,
                )  # fmt: skip
                if attempt < function.max_retries and self._accepting:
                    time.sleep(RETRY_DELAYS_SECONDS[min(attempt, len(RETRY_DELAYS_SECONDS) - 1)])
                else:
                    return

    def drain(self, grace_seconds: float) -> None:
        """Stop taking invocations; let the queued and running ones finish for
        `grace_seconds`, then stop their pg_dump so each backup records `error`."""
        with self._submit_lock:
            self._accepting = False
        self._wait_idle(grace_seconds)
        stopped = self.launcher.stop_all()
        if stopped:
            log.warning(
                "stopped %d running pg_dump at shutdown; their backups end in error", stopped
            )
        # Queued calls now fail fast (no pg_dump may start) and record their error.
        if not self._wait_idle(FINAL_WAIT_SECONDS):
            log.error("invocations still running after %.0f s; abandoning them", FINAL_WAIT_SECONDS)
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout=1)

    def _wait_idle(self, timeout: float) -> bool:
        """Wait until no invocation is queued or running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    # -- the Invoke endpoint -------------------------------------------------

    def start(self, port: int = 0) -> None:
        """Serve the Invoke API on 127.0.0.1 only, to requests signed with the stack's key."""

        class Handler(InvokeRequestHandler):
            runtime = self

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="lambda-endpoint", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def code_location(self, logical_id: str) -> str:
        return f"{self.url}/code/{self.code_key}/{logical_id}.zip"

    def function_description(self, function: LocalFunction) -> dict[str, Any]:
        """GetFunction's answer: the configuration and where the code package is."""
        if self.code is None:
            raise FunctionNotFound("this stack serves no code packages")
        return {
            "Configuration": {
                "FunctionName": function.name,
                "FunctionArn": function.arn(self.region),
                "Runtime": "python3.12",
                "Handler": function.handler,
                "Timeout": function.timeout_seconds,
                "MemorySize": function.memory_mb,
                "Layers": [{"Arn": arn} for _, arn in function.layers],
                "CodeSha256": self.code.code_sha256(function.logical_id),
            },
            "Code": {"RepositoryType": "S3", "Location": self.code_location(function.logical_id)},
        }

    def layer_description(self, arn: str) -> dict[str, Any]:
        """GetLayerVersionByArn's answer."""
        if self.code is None or arn not in self.layers:
            raise FunctionNotFound(f"Layer version {arn} does not exist.")
        return {
            "LayerVersionArn": arn,
            "LayerArn": arn.rsplit(":", 1)[0],
            "Version": int(arn.rsplit(":", 1)[1]),
            "Content": {
                "Location": self.code_location(self.layers[arn]),
                "CodeSha256": self.code.code_sha256(self.layers[arn]),
            },
        }

    def stop_endpoint(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class InvokeRequestHandler(BaseHTTPRequestHandler):
    """The Invoke API's REST shape, as botocore's Lambda client speaks it."""

    runtime: LambdaRuntime
    server_version = "pgbackups-local-lambda"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("lambda endpoint: " + format, *args)

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, error_type: str, message: str) -> None:
        body = json.dumps({"Type": "User", "message": message}).encode()
        self._reply(status, body, {"x-amzn-ErrorType": error_type})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        runtime = self.runtime
        try:
            if (code := CODE_PATH.match(url.path)) and runtime.code is not None:
                if code["key"] != runtime.code_key:
                    self._error(403, "AccessDenied", "bad code location")
                    return
                # Unsigned, like a presigned S3 URL: the random key in the path is the
                # secret, and only a signed GetFunction answer tells it.
                body = runtime.code.package(code["logical_id"]).read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            caller = verify(
                "GET", self.path, dict(self.headers.items()), lambda: b"", runtime.identities
            )
            if match := FUNCTION_PATH.match(url.path):
                function = runtime.function(unquote(match["name"]))
                runtime.identities.authorize(
                    caller, "lambda:GetFunction", [function.arn(runtime.region)]
                )
                answer = runtime.function_description(function)
            elif (
                url.path == LAYERS_PATH and dict(parse_qsl(url.query)).get("find") == "LayerVersion"
            ):
                arn = dict(parse_qsl(url.query)).get("Arn", "")
                runtime.identities.authorize(caller, "lambda:GetLayerVersion", [arn])
                answer = runtime.layer_description(arn)
            else:
                self._error(404, "ResourceNotFoundException", f"no such route: {self.path}")
                return
        except SignatureRefused as refused:
            self.close_connection = True
            self._error(403, "AccessDeniedException", str(refused))
            return
        except AccessDenied as denied:
            self._error(403, "AccessDeniedException", str(denied))
            return
        except (FunctionNotFound, FileNotFoundError) as missing:
            self._error(404, "ResourceNotFoundException", str(missing))
            return
        self._reply(HTTPStatus.OK, json.dumps(answer).encode())

    def do_POST(self) -> None:
        try:
            length = max(int(self.headers.get("Content-Length") or 0), 0)
        except ValueError:
            length = 0
        if length > MAX_PAYLOAD_BYTES:
            self.close_connection = True
            self._error(
                413, "RequestTooLargeException", "Request must be smaller than 6291456 bytes"
            )
            return
        body: list[bytes] = []

        def read_body() -> bytes:
            body.append(self.rfile.read(length) if length else b"")
            return body[0]

        try:
            caller = verify(
                "POST", self.path, dict(self.headers.items()), read_body, self.runtime.identities
            )
        except SignatureRefused as refused:
            self.close_connection = True
            self._error(403, "AccessDeniedException", str(refused))
            return
        raw = body[0] if body else read_body()
        match = INVOKE_PATH.match(urlsplit(self.path).path)
        if match is None:
            self._error(404, "ResourceNotFoundException", f"no such route: {self.path}")
            return
        try:
            function = self.runtime.function(unquote(match["name"]))
        except FunctionNotFound as missing:
            self._error(404, "ResourceNotFoundException", str(missing))
            return
        try:
            self.runtime.identities.authorize(
                caller, "lambda:InvokeFunction", [function.arn(self.runtime.region)]
            )
        except AccessDenied as denied:
            self._error(403, "AccessDeniedException", str(denied))
            return
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            self._error(
                400, "InvalidRequestContentException", "Could not parse request body into json"
            )
            return
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            self._reply(204)
        elif invocation_type == "Event":
            try:
                self.runtime.submit(function, payload)
            except ShuttingDown as stopping:
                self._error(503, "ServiceException", str(stopping))
                return
            self._reply(202)
        elif invocation_type == "RequestResponse":
            self._invoke_sync(function, payload)
        else:
            self._error(
                400, "InvalidParameterValueException", f"bad invocation type {invocation_type}"
            )

    def _invoke_sync(self, function: LocalFunction, payload: Any) -> None:
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        try:
            result = self.runtime.run(function, payload)
        except Exception as error:
            log.exception("invocation of %s failed", function.name)
            document = {
                "errorMessage": str(error),
                "errorType": type(error).__name__,
                "stackTrace": traceback.format_tb(error.__traceback__),
            }
            headers["X-Amz-Function-Error"] = "Unhandled"
            self._reply(HTTPStatus.OK, json.dumps(document).encode(), headers)
            return
        self._reply(HTTPStatus.OK, json.dumps(result, default=str).encode(), headers)


# -- the hourly EventBridge rule ---------------------------------------------------

CRON_HOURLY = re.compile(r"^cron\((?P<minute>\d{1,2})(/(?P<step>\d{1,2}))? \* \* \* \? \*\)$")


def scheduled_event(at: datetime, region: str, rule_name: str) -> dict[str, Any]:
    """The payload EventBridge sends a Schedule target (see events/dispatcher.json)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{rule_name}"],
        "detail": {},
    }


class HourlyRule:
    """`cron(M * * * ? *)`: invokes the target asynchronously at minute M of every hour;
    `cron(M/N * * * ? *)` at M, M+N, … (the WAL capture's interval)."""

    def __init__(
        self, expression: str, fire: Callable[[datetime], None], *, name: str = "Hourly"
    ) -> None:
        match = CRON_HOURLY.match(expression)
        if match is None:
            raise ValueError(
                "the local stack runs hourly schedules only (cron(M * * * ? *) or "
                f"cron(M/N * * * ? *)), not {expression}"
            )
        self.minute = int(match["minute"])
        self.step = int(match["step"] or 60)
        self.name = name
        self._fire = fire
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"rule-{name}", daemon=True)

    def next_run(self, after: datetime) -> datetime:
        hour = after.replace(minute=0, second=0, microsecond=0)
        for start in (hour, hour + timedelta(hours=1)):
            for minute in range(self.minute, 60, self.step):
                if (candidate := start + timedelta(minutes=minute)) > after:
                    return candidate
        raise AssertionError("unreachable: the next hour has a run")

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            at = self.next_run(datetime.now(UTC))
            # Sleep in short steps: the wall clock may jump (suspend, NTP).
            while not self._stopped.is_set() and datetime.now(UTC) < at:
                self._stopped.wait(min(30.0, (at - datetime.now(UTC)).total_seconds()))
            if self._stopped.is_set():
                return
            try:
                self._fire(at)
            except Exception:
                log.exception("the %s rule could not invoke its target", self.name)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
