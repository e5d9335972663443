"""The one-way boundaries of the code (docs/architecture.md), read from the imports.

Only module-level imports count as a dependency of a module; an import inside a
function (a lazy import) is allowed where the text below says so.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    if module_level_only:  # `if TYPE_CHECKING:` blocks count too: they name a dependency
        nodes = [
            n for top in tree.body for n in ([top] if not isinstance(top, ast.If) else top.body)
        ]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _offending(
    folder: str, forbidden: tuple[str, ...], *, module_level_only: bool = False
) -> dict[str, list[str]]:
    found = {}
    for path in _modules(folder):
        bad = sorted(
            name
            for name in _imports(path, module_level_only=module_level_only)
            if any(name == f or name.startswith(f"{f}.") for f in forbidden)
        )
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_the_shipped_package_never_imports_the_cli_or_the_local_stack() -> None:
    assert (
        _offending(
            "pgbackups", ("pgbackups_cli", "pgbackups_local", "click", "rich", "yaml", "moto")
        )
        == {}
    )


def test_the_domain_does_no_io_and_knows_no_layer_above_it() -> None:
    forbidden = (
        "pgbackups.api",
        "pgbackups.usecases",
        "pgbackups.adapters",
        "pgbackups.wiring",
        "pgbackups.postgres",
        "boto3",
        "botocore",
        "psycopg2",
        "aws_lambda_powertools",
    )
    assert _offending("pgbackups/domain", forbidden) == {}


def test_use_cases_reach_aws_through_ports_only_and_know_no_http() -> None:
    forbidden = ("pgbackups.api", "pgbackups.wiring", "pgbackups.adapters", "boto3", "botocore")
    assert _offending("pgbackups/usecases", forbidden) == {}


def test_the_api_parses_and_renders_and_reaches_no_adapter() -> None:
    forbidden = ("pgbackups.adapters", "pgbackups.wiring", "boto3", "botocore")
    assert _offending("pgbackups/api", forbidden) == {}


def test_the_postgres_side_knows_no_layer_above_it() -> None:
    forbidden = (
        "pgbackups.ports",
        "pgbackups.services",
        "pgbackups.usecases",
        "pgbackups.adapters",
        "pgbackups.api",
        "pgbackups.wiring",
    )
    assert _offending("pgbackups/postgres", forbidden) == {}


def test_the_ports_are_protocols_on_domain_records_only() -> None:
    """`ports.py` builds on the domain; the bundle that also holds the PostgreSQL tools
    and the settings is `services.py`."""
    imported = _imports(ROOT / "pgbackups/ports.py", module_level_only=False)
    ours = {name for name in imported if name.startswith("pgbackups")}
    assert {name for name in ours if not name.startswith("pgbackups.domain")} == set()
    tree = ast.parse((ROOT / "pgbackups/ports.py").read_text())
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    assert classes
    assert [c.name for c in classes if [ast.unparse(b) for b in c.bases] != ["Protocol"]] == []


def test_only_the_wiring_builds_aws_clients() -> None:
    builders = {
        str(path.relative_to(ROOT))
        for path in _modules("pgbackups")
        if ".client(" in path.read_text() and "boto3" in path.read_text()
    }
    assert builders <= {"pgbackups/wiring.py"}


def test_the_cli_loads_the_local_stack_only_when_asked() -> None:
    assert _offending("pgbackups_cli", ("pgbackups_local",), module_level_only=True) == {}


def test_the_cli_names_the_local_stack_only_as_its_lazy_command() -> None:
    mentions = [
        str(path.relative_to(ROOT))
        for path in _modules("pgbackups_cli")
        if "pgbackups_local" in path.read_text()
    ]
    assert mentions == ["pgbackups_cli/__init__.py"]


@pytest.mark.parametrize("args", [["--help"], ["backups", "--help"], ["--version"]])
def test_cli_start_up_loads_no_heavy_module(args: list[str]) -> None:
    """What `pgbackups --help` imports, live: no local stack, boto3, pydantic or rich
    (`make bench` measures the start-up these would slow down)."""
    probe = (
        "import json, sys\n"
        "from pgbackups_cli import main\n"
        f"sys.argv = ['pgbackups', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(json.loads(result.stderr.strip().splitlines()[-1]))
    heavy = {"pgbackups_local", "boto3", "botocore", "pydantic", "rich", "moto", "yaml", "psycopg2"}
    assert loaded & heavy == set()
