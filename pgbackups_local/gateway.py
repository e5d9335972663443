"""A local stand-in for the HTTP API's API Gateway: same routes, same authorizer, same code.

Each HTTP request becomes an API Gateway HTTP API payload 2.0 event. Routes whose
authorizer is on (all but `Auth: {Authorizer: NONE}` in template.yaml) first go
through the Lambda authorizer, with API Gateway's answers: 401 when the identity
source (the Authorization header) is missing, 403 when the authorizer denies.
Then the route's handler (`functions/<module>.py`, loaded by file path, like a
warm Lambda instance) gets the event and a Lambda-like context, and its payload
2.0 response is written back. Unknown routes are 404 `{"message":"Not Found"}`.

    gateway = Gateway(functions_dir=Path("functions")).start()   # port 0: any free port
    requests.get(f"{gateway.url}/v1/openapi.json")
    gateway.stop()
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pgbackups_local.functions import (
    ACCOUNT_ID,
    DEFAULT_TIMEOUT_SECONDS,
    FUNCTIONS_DIR,
    LambdaContext,
    load_handler_module,
)
from pgbackups_local.template import (
    Route,
    authorizer_handler,
    http_routes,
    load_template,
    resources_of_type,
)

logger = logging.getLogger(__name__)

API_ID = "local"
REGION = "local"
# API Gateway's own limit on a request's payload.
MAX_BODY_BYTES = 10 * 1024 * 1024
# How long a refused request's body may take to arrive while it is discarded.
DISCARD_TIMEOUT_SECONDS = 30.0

Handler = Callable[[dict[str, Any], Any], Any]
# The body, or how to read it once the request is known to be authorized and small enough.
Body = bytes | Callable[[], bytes]


@dataclass
class _Function:
    """One loaded handler; a lock makes it serve one event at a time, like a Lambda instance."""

    name: str
    module: ModuleType
    handler: Handler
    timeout_seconds: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, event: dict[str, Any]) -> Any:
        with self.lock:
            context = LambdaContext(self.name, timeout_seconds=self.timeout_seconds, region=REGION)
            return self.handler(event, context)


@dataclass(frozen=True)
class _CompiledRoute:
    route: Route
    pattern: re.Pattern[str]

    @property
    def route_key(self) -> str:
        return f"{self.route.method} {self.route.path}"

    @property
    def specificity(self) -> tuple[int, int]:
        # API Gateway prefers the most specific route: fewer variables, longer paths.
        return (self.route.path.count("{"), -len(self.route.path))


def _compile(route: Route) -> _CompiledRoute:
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", route.path):
        if part.startswith("{") and part.endswith("+}"):
            pattern += f"(?P<{part[1:-2]}>.+)"
        elif part.startswith("{"):
            pattern += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            pattern += re.escape(part)
    return _CompiledRoute(route, re.compile(f"^{pattern}$"))


def _identity_headers(template: dict[str, Any]) -> list[str]:
    """The headers that must be present before the authorizer is even called."""
    (api,) = resources_of_type(template, "AWS::Serverless::HttpApi").values()
    auth = api["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    headers = (authorizer.get("Identity") or {}).get("Headers") or ["Authorization"]
    return [str(name).lower() for name in headers]


def _function_settings(template: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """module.handler → (logical id, timeout) for every function of the template."""
    default = template.get("Globals", {}).get("Function", {}).get("Timeout")
    settings = {}
    for logical_id, function in resources_of_type(template, "AWS::Serverless::Function").items():
        props = function["Properties"]
        timeout = props.get("Timeout", default)
        seconds = timeout if isinstance(timeout, int) else DEFAULT_TIMEOUT_SECONDS
        settings[props["Handler"]] = (logical_id, seconds)
    return settings


class Gateway:
    """The HTTP API on 127.0.0.1, serving template.yaml's routes with functions/ handlers."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        functions_dir: Path = FUNCTIONS_DIR,
        template: dict[str, Any] | None = None,
        environments: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """`environments`: by function logical id, what its cold start sees (its role's
        credentials, in the local stack)."""
        self.host = host
        self.port = port
        self.functions_dir = Path(functions_dir)
        self._template = template if template is not None else load_template()
        routes = [_compile(route) for route in http_routes(self._template)]
        self._routes = sorted(routes, key=lambda compiled: compiled.specificity)
        self._authorizer_handler = authorizer_handler(self._template)
        self._identity_headers = _identity_headers(self._template)
        self._settings = _function_settings(self._template)
        self._environments = dict(environments or {})
        # Called once a request that may change something (not GET) has been answered
        # by its function: the local stack notes the replication slots then.
        self.after_change: Callable[[], None] | None = None
        self._functions: dict[str, _Function] = {}
        self._modules: dict[str, ModuleType] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def load(self) -> Gateway:
        """Import every handler now (cold starts), so a bad environment fails at start."""
        for handler in {self._authorizer_handler, *(r.route.handler for r in self._routes)}:
            self._function(handler)
        return self

    def bind(self) -> Gateway:
        if self._server is None:
            self.load()
            self._server = ThreadingHTTPServer((self.host, self.port), _handler_class(self))
            self._server.daemon_threads = True
            self.port = int(self._server.server_address[1])
        return self

    def start(self) -> Gateway:
        """Serve in a background thread; `url` is valid when this returns."""
        server = self.bind()._server
        assert server is not None
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"gateway-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until `stop()` is called from another one.

        Not from a signal handler of this same thread: `stop()` waits for this loop
        to end. A caller that handles signals can `start()` and wait instead.
        """
        server = self.bind()._server
        assert server is not None
        server.serve_forever()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- functions -------------------------------------------------------------------

    def module(self, name: str) -> ModuleType:
        """The loaded `functions/<name>.py`, e.g. to swap its collaborators in a test."""
        if name not in self._modules:
            logical_ids = [
                logical_id
                for handler, (logical_id, _) in self._settings.items()
                if handler.rpartition(".")[0] == name
            ]
            environment = self._environments.get(logical_ids[0]) if logical_ids else None
            self._modules[name] = load_handler_module(name, self.functions_dir, environment)
        return self._modules[name]

    def _function(self, handler: str) -> _Function:
        if handler not in self._functions:
            module_name, _, attribute = handler.rpartition(".")
            module = self.module(module_name)
            logical_id, timeout = self._settings.get(
                handler, (module_name, DEFAULT_TIMEOUT_SECONDS)
            )
            self._functions[handler] = _Function(
                logical_id, module, getattr(module, attribute), timeout
            )
        return self._functions[handler]

    # -- requests ---------------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[_CompiledRoute, dict[str, str]] | None:
        for compiled in self._routes:
            if compiled.route.method not in (method, "ANY"):
                continue
            found = compiled.pattern.match(path)
            if found:
                return compiled, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def handle(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: Body,
        client_ip: str,
        *,
        body_length: int | None = None,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One HTTP request through the gateway: (status, headers, body) of the answer.

        As API Gateway does, the route and the token are checked before the body is
        read, and a body over MAX_BODY_BYTES is refused with 413 without reading it:
        a caller without the token cannot make this process hold anything.
        """
        raw_path, _, raw_query = target.partition("?")
        raw_path = urlsplit(raw_path).path or "/"
        request_id = base64.b64encode(uuid.uuid4().bytes[:10]).decode()
        found = self.match(method, raw_path)
        if found is None:
            return _gateway_answer(HTTPStatus.NOT_FOUND, "Not Found", request_id)
        compiled, path_parameters = found
        event = _request_event(
            compiled.route_key,
            method,
            raw_path,
            raw_query,
            headers,
            client_ip,
            request_id,
            path_parameters,
        )
        if compiled.route.authorized:
            denied = self._authorize(event, compiled)
            if denied is not None:
                return _gateway_answer(*denied, request_id)
        length = len(body) if isinstance(body, bytes) else body_length or 0
        if length > MAX_BODY_BYTES:
            return _gateway_answer(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Large", request_id
            )
        _set_body(event, body if isinstance(body, bytes) else body())
        try:
            result = self._function(compiled.route.handler).invoke(event)
        except Exception:
            logger.exception("%s failed", compiled.route.handler)
            return _gateway_answer(
                HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error", request_id
            )
        if method != "GET" and self.after_change is not None:
            try:
                self.after_change()
            except Exception:
                logger.exception("noting a change failed")
        return _integration_answer(result, request_id)

    def _authorize(
        self, event: dict[str, Any], compiled: _CompiledRoute
    ) -> tuple[HTTPStatus, str] | None:
        """None when allowed, else API Gateway's answer."""
        headers = event["headers"]
        identity = [headers.get(name, "") for name in self._identity_headers]
        if not all(identity):
            return HTTPStatus.UNAUTHORIZED, "Unauthorized"
        request = _authorizer_event(event, compiled, identity)
        try:
            answer = self._function(self._authorizer_handler).invoke(request)
        except Exception:
            logger.exception("the authorizer failed")
            return HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error"
        if not isinstance(answer, dict) or answer.get("isAuthorized") is not True:
            return HTTPStatus.FORBIDDEN, "Forbidden"
        event["requestContext"]["authorizer"] = {"lambda": answer.get("context") or {}}
        return None


# -- payload 2.0 -----------------------------------------------------------------------------


def _request_context(
    method: str, raw_path: str, route_key: str, request_id: str, client_ip: str, user_agent: str
) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": "localhost",
        "domainPrefix": API_ID,
        "http": {
            "method": method,
            "path": unquote(raw_path),
            "protocol": "HTTP/1.1",
            "sourceIp": client_ip,
            "userAgent": user_agent,
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }


def _request_event(
    route_key: str,
    method: str,
    raw_path: str,
    raw_query: str,
    header_list: list[tuple[str, str]],
    client_ip: str,
    request_id: str,
    path_parameters: dict[str, str],
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in header_list:
        name = name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            # Repeated headers are joined with commas, as API Gateway does.
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
    }
    if cookies:
        event["cookies"] = cookies
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = _request_context(
        method, raw_path, route_key, request_id, client_ip, headers.get("user-agent", "")
    )
    if path_parameters:
        event["pathParameters"] = path_parameters
    event["isBase64Encoded"] = False
    return event


def _set_body(event: dict[str, Any], body: bytes) -> None:
    if body:
        try:
            event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True


def _authorizer_event(
    event: dict[str, Any], compiled: _CompiledRoute, identity: list[str]
) -> dict[str, Any]:
    """The authorizer's payload 2.0 request for `event`."""
    context = event["requestContext"]
    route_arn = (
        f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{context['stage']}/"
        f"{compiled.route.method}{event['rawPath']}"
    )
    request = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": identity,
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
        "headers": dict(event["headers"]),
        "requestContext": {k: v for k, v in context.items() if k != "authorizer"},
    }
    for optional in ("cookies", "queryStringParameters", "pathParameters"):
        if optional in event:
            request[optional] = event[optional]
    return request


def _gateway_answer(
    status: HTTPStatus, message: str, request_id: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """An answer API Gateway gives itself, without the integration."""
    body = json.dumps({"message": message}).encode()
    return (
        int(status),
        [("Content-Type", "application/json"), ("apigw-requestid", request_id)],
        body,
    )


def _integration_answer(result: Any, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy response (payload 2.0) as HTTP."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Payload 2.0 turns any other return value into a 200 JSON answer.
        body = json.dumps(result).encode()
        return 200, [("Content-Type", "application/json"), ("apigw-requestid", request_id)], body
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(str(name), str(value)) for value in values]
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    headers.append(("apigw-requestid", request_id))
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = str(raw).encode()
    return int(result["statusCode"]), headers, body


# -- HTTP ------------------------------------------------------------------------------------


def _handler_class(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class GatewayRequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
        server_version = "pgbackups-local-gateway"

        def _serve(self) -> None:
            try:
                length = max(int(self.headers.get("Content-Length") or 0), 0)
            except ValueError:
                length = 0
            read = False

            def read_body() -> bytes:
                nonlocal read
                read = True
                return self.rfile.read(length) if length else b""

            status, headers, payload = gateway.handle(
                self.command,
                self.path,
                list(self.headers.items()),
                read_body,
                self.client_address[0],
                body_length=length,
            )
            self.send_response(status)
            names = {name.lower() for name, _ in headers}
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            if "content-type" not in names and payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if length and not read:
                # The body is still on the wire: this connection cannot carry another request.
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            if length and not read:
                self._discard_body(length)

        def _discard_body(self, length: int) -> None:
            """Read and drop the unread body in small pieces, so the client, still sending,
            gets the answer rather than a reset connection; nothing of it is kept."""
            self.wfile.flush()
            self.connection.settimeout(DISCARD_TIMEOUT_SECONDS)
            with contextlib.suppress(OSError):
                while length > 0:
                    chunk = self.rfile.read1(min(length, 65536))
                    if not chunk:
                        break
                    length -= len(chunk)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s " + format, self.client_address[0], *args)

    return GatewayRequestHandler
