"""The local stack's `stack.json`: the one reader (the CLI, the demo and the tests use it).

`pgbackups local` writes it (mode 0600) into its state directory when it is
ready and removes it when it stops; a file whose `pid` no longer runs is left
over from a stack that was killed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STACK_FILE = "stack.json"
DEFAULT_STATE_DIR = Path(".pgbackups-local")


class StackFileError(Exception):
    """No running local stack there; the message says what to do."""


def stack_file_path(state_dir: Path = DEFAULT_STATE_DIR) -> Path:
    return state_dir / STACK_FILE


def read_stack_file(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, Any]:
    """What the running stack wrote; StackFileError if none runs with this state dir."""
    path = stack_file_path(state_dir)
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise StackFileError(
            f"no local stack is running with state dir {state_dir} (no {path}): "
            "start one with `pgbackups local`"
        ) from None
    except (OSError, ValueError) as error:
        raise StackFileError(f"cannot read {path}: {error}") from None
    if not isinstance(info, dict):
        raise StackFileError(f"cannot read {path}: expected a JSON object")
    pid = info.get("pid")
    if not isinstance(pid, int) or not process_alive(pid):
        raise StackFileError(
            f"{path} is left over from a stack (pid {pid}) that is not running: "
            "start one with `pgbackups local`"
        )
    return info


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (owned by us or not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
