"""The suite's layers: a test outside them, or a unit test that starts a server, is refused
at collection (a test in no layer would never run; a server would slow `make test-unit`).

The check collects a small tree of tests with this suite's conftest, in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TEST = "def test_it({fixture}):\n    pass\n"
FINE = {
    "unit/test_fine_unit.py": "pytestmark = pytest.mark.unit\n\n" + TEST.format(fixture=""),
    "e2e/test_fine_e2e.py": "pytestmark = pytest.mark.e2e\n\n" + TEST.format(fixture="tmp_path"),
}
# file -> its text and what the refusal says of its test
REFUSED = {
    "test_top.py": (TEST.format(fixture=""), "marked with no layer, in tests/"),
    "unit/test_bare.py": (TEST.format(fixture=""), "marked with no layer, in tests/unit/"),
    "other/test_o.py": (
        "pytestmark = pytest.mark.unit\n\n" + TEST.format(fixture=""),
        "marked ['unit'], in tests/other/",
    ),
    "unit/test_wrong.py": (
        "pytestmark = pytest.mark.integration\n\n" + TEST.format(fixture=""),
        "marked ['integration'], in tests/unit/",
    ),
    "unit/test_two.py": (
        "pytestmark = pytest.mark.unit\n\n@pytest.mark.e2e\n" + TEST.format(fixture=""),
        "marked ['e2e', 'unit'], in tests/unit/",
    ),
    "unit/test_cluster.py": (
        "pytestmark = pytest.mark.unit\n\n" + TEST.format(fixture="database_url"),
        "a unit test starts no server, this one uses postgres",
    ),
    "unit/test_moto.py": (
        "pytestmark = pytest.mark.unit\n\n" + TEST.format(fixture="aws"),
        "a unit test starts no server, this one uses moto_endpoint",
    ),
}


def collect(tree: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`pytest --collect-only` on tree/tests/<files> with this suite's conftest."""
    for name, text in files.items():
        path = tree / "tests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("import pytest\n\n" + text)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "--collect-only", "-q", "--rootdir", str(tree), "-c", os.devnull, str(tree / "tests")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip


def test_a_test_outside_the_layers_fails_collection_and_is_named(tmp_path: Path) -> None:
    result = collect(tmp_path, FINE | {name: text for name, (text, _) in REFUSED.items()})

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "every test belongs to exactly one layer" in output
    # Every refused test is named, and only those: the ones in their layer are not.
    named = sorted(line for line in result.stderr.splitlines() if "::" in line)
    assert named == sorted(
        f"  tests/{name}::test_it: {said}" for name, (_, said) in REFUSED.items()
    ), output
