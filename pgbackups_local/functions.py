"""The template's functions run on this machine: loading a handler module as Lambda
would (once per cold start) and the context object Lambda passes it.

One home for the local stack's gateway and runtime, the tests and the benchmark.

Lambda runs one invocation per execution environment at a time; here the
functions share one process and run concurrently in threads. What powertools
keeps for the invocation in progress (its metrics, dimensions and metadata, in
class attributes shared by every `Metrics`) is therefore made per thread before
any handler is loaded: two backups at once no longer overwrite each other's
`database` dimension or publish each other's metrics. Likewise the keys a
handler's logger adds for its invocation (function_name, correlation_id…): all
handlers' loggers share one powertools formatter, whose keys become per thread,
so a backup's lines are not tagged with the API function that ran meanwhile.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import sys
import threading
import time
import uuid
from collections import UserDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

FUNCTIONS_DIR = Path(__file__).resolve().parents[1] / "functions"
ACCOUNT_ID = "123456789012"  # moto's account
DEFAULT_TIMEOUT_SECONDS = 30
_module_names = itertools.count()


class PerThreadDict(UserDict[str, Any]):
    """A dict whose contents are the current thread's own (each starts empty)."""

    def __init__(self) -> None:
        self._local = threading.local()
        super().__init__()

    @property
    def data(self) -> dict[str, Any]:
        if not hasattr(self._local, "data"):
            self._local.data = {}
        return self._local.data

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        self._local.data = value


def _metrics_per_invocation() -> None:
    from aws_lambda_powertools.metrics.metrics import Metrics

    for name in ("_metrics", "_dimensions", "_metadata"):
        if not isinstance(getattr(Metrics, name), PerThreadDict):
            setattr(Metrics, name, PerThreadDict())


class PerThreadLogFormat:
    """The formatter's `log_format` (the keys of every line), each thread's own.

    A thread that has not set it starts from its creator's (a handler's helper threads log
    with the invocation's keys, as on Lambda), else the keys the formatter was made
    with. Each handler sets its own at the start of an invocation (clear_state).
    """

    INITIAL = "_pgbackups_initial_log_format"
    INHERITED = "_pgbackups_log_formats"

    def __init__(self) -> None:
        self._local = threading.local()

    def values(self) -> dict[int, dict[str, Any]]:
        if not hasattr(self._local, "values"):
            inherited = getattr(threading.current_thread(), self.INHERITED, {})
            # Copies: what the thread then adds is its own.
            self._local.values = {key: dict(keys) for key, keys in inherited.items()}
        return self._local.values

    def __get__(self, formatter: Any, owner: type | None = None) -> Any:
        if formatter is None:
            return self
        values = self.values()
        if id(formatter) not in values:
            values[id(formatter)] = dict(formatter.__dict__.get(self.INITIAL, {}))
        return values[id(formatter)]

    def __set__(self, formatter: Any, value: dict[str, Any]) -> None:
        self.values()[id(formatter)] = value


def _log_keys_per_invocation() -> None:
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    if isinstance(LambdaPowertoolsFormatter.__dict__.get("log_format"), PerThreadLogFormat):
        return
    log_format = PerThreadLogFormat()
    made = LambdaPowertoolsFormatter.__init__
    thread_made = threading.Thread.__init__

    def formatter_init(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.__dict__[PerThreadLogFormat.INITIAL] = dict(self.log_format)

    def thread_init(self: threading.Thread, *args: Any, **kwargs: Any) -> None:
        thread_made(self, *args, **kwargs)
        setattr(self, PerThreadLogFormat.INHERITED, dict(log_format.values()))

    LambdaPowertoolsFormatter.log_format = log_format  # type: ignore[assignment]
    LambdaPowertoolsFormatter.__init__ = formatter_init  # type: ignore[method-assign]
    threading.Thread.__init__ = thread_init  # type: ignore[method-assign]


_metrics_per_invocation()
_log_keys_per_invocation()
# Cold starts take turns: each sees its own function's credentials in os.environ.
_cold_start = threading.Lock()


@dataclass
class LambdaContext:
    """What a handler and powertools read from Lambda's context, with a real deadline."""

    function_name: str = "pgbackups-local"
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    memory_limit_in_mb: int = 512
    region: str = "local"
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.invoked_function_arn = self.invoked_function_arn or (
            f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"
        )
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/[{self.function_version}]{self.aws_request_id[:8]}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_handler_module(
    name: str, functions_dir: Path = FUNCTIONS_DIR, environment: Mapping[str, str] | None = None
) -> ModuleType:
    """`functions/<name>.py` imported afresh, under a name of its own: its module-level
    clients are built now, from the current environment, like a cold start.

    `environment`: what this function's cold start sees on top of the process's
    (the local stack gives each function its own role's credentials this way:
    boto3 clients keep the credentials they were built with)."""
    with _cold_start, _environment(environment or {}):
        return _import(name, functions_dir)


def _import(name: str, functions_dir: Path) -> ModuleType:
    path = functions_dir / f"{name}.py"
    unique = f"_pgbackups_function_{name}_{next(_module_names)}"
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    return module
