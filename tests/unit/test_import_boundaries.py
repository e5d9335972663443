"""The one-way boundaries between the three packages, read from the source and checked live.

- `pgbackups` (what ships to Lambda) imports neither the CLI nor the local stack;
- `pgbackups_cli` imports the local stack only inside the lazy `local` command, never
  at module level;
- `pgbackups --help` and `pgbackups backups` load neither the local stack nor boto3,
  pydantic or rich (their start-up is measured in `make bench`).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(tree: ast.AST) -> Iterator[tuple[str, ast.stmt]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node


def top_level_imports(tree: ast.Module) -> Iterator[str]:
    """Imports that run when the module is imported (TYPE_CHECKING blocks do not)."""
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for name, _ in imported_modules(ast.Module(body=[node], type_ignores=[])):
            yield name


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def root_of(module: str) -> str:
    return module.split(".", 1)[0]


@pytest.mark.parametrize("path", sources("pgbackups"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_shipped_package_never_imports_the_cli_or_the_local_stack(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    wrong = {
        m for m, _ in imported_modules(tree) if root_of(m) in ("pgbackups_cli", "pgbackups_local")
    }
    assert wrong == set()


@pytest.mark.parametrize("path", sources("pgbackups_cli"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_cli_never_imports_the_local_stack_at_module_level(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    assert {m for m in top_level_imports(tree) if root_of(m) == "pgbackups_local"} == set()


def test_the_cli_names_the_local_stack_only_as_its_lazy_command() -> None:
    mentions = [
        path.relative_to(ROOT)
        for path in sources("pgbackups_cli")
        if "pgbackups_local" in path.read_text()
    ]
    assert mentions == [Path("pgbackups_cli/__init__.py")]


@pytest.mark.parametrize("args", [["--help"], ["backups", "--help"], ["--version"]])
def test_start_up_loads_no_heavy_module(args: list[str]) -> None:
    probe = (
        "import json, sys\n"
        "from pgbackups_cli import main\n"
        f"sys.argv = ['pgbackups', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "print(json.dumps(sorted(roots)), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(json.loads(result.stderr.strip().splitlines()[-1]))
    heavy = {"pgbackups_local", "boto3", "botocore", "pydantic", "rich", "moto", "yaml", "psycopg2"}
    assert loaded & heavy == set()
