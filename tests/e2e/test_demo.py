"""`make demo`: the whole flow, as `python -m pgbackups_local.demo` runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.conftest import stack_environment

pytestmark = pytest.mark.e2e


def test_make_demo_runs_the_whole_flow_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pgbackups_local.demo"],
        capture_output=True,
        text=True,
        check=False,
        env=stack_environment(),
        timeout=300,
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    for line in (
        "registered `demo`",
        "Accepted: backup",
        "is scheduled.",
        "SHA-256 matches the backup's record",
        "without errors.",
        "All 5 tables match",
        "Restoring the same backup where it is",
        "archive entries restored",
        "Stopped cleanly",
        "Demo complete",
    ):
        assert line in output, output
    assert output.count("All 5 tables match") == 2, output
