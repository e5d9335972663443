"""The test harness itself: a run that is stopped leaves no PostgreSQL cluster behind.

A CI timeout or `kill` stops pytest with SIGTERM; the clusters the fixtures started
must stop with it, as they do on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import time
from pathlib import Path


def test_waits_to_be_stopped(postgres):
    Path({started!r}).write_text(str(postgres.data_dir))
    for _ in range(600):  # until the run is stopped (a minute at most)
        time.sleep(0.1)
"""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_stops_its_postgresql_cluster(tmp_path: Path, stop: signal.Signals) -> None:
    started = tmp_path / "started"
    (tmp_path / "test_probe.py").write_text(PROBE.format(started=str(started)))
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-q", "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # SIGINT as on a terminal (a background job of a script would ignore it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.exists(), run.communicate(timeout=60)[0] if run.poll() is not None else ""
        data_dir = Path(started.read_text())
        assert (data_dir / "postmaster.pid").exists()  # the cluster runs

        run.send_signal(stop)
        output = run.communicate(timeout=120)[0]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()

    assert run.returncode != 0, output  # stopped, not passed
    assert not (data_dir / "postmaster.pid").exists(), output
    assert not data_dir.exists(), output
