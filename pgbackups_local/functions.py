"""The template's functions run on this machine: loading a handler module as Lambda
would (once per cold start) and the context object Lambda passes it.

One home for the local stack's gateway and runtime, the tests and the benchmark.
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

FUNCTIONS_DIR = Path(__file__).resolve().parents[1] / "functions"
ACCOUNT_ID = "123456789012"  # moto's account
DEFAULT_TIMEOUT_SECONDS = 30
_module_names = itertools.count()
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
