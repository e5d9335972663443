"""The SAM template as the tools that deploy it read it: `sam validate --lint`, cfn-lint and
checkov accept it, and every checkov skip says why.

The tools are the ones `make setup` installs in their own venvs, found through
PGBACKUPS_SAM and PGBACKUPS_CHECKOV (exported by the Makefile); everything runs
offline. The template's content is checked in tests/unit/test_template.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pgbackups_local.template import load_template

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return load_template()["Resources"]


def tool(env_var: str) -> Path:
    value = os.environ.get(env_var)
    if not value:
        pytest.fail(
            f"{env_var} is not set: run `make test` (it installs the tool and exports "
            f"{env_var}), or point it at the executable yourself"
        )
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"{env_var}={value} does not exist: run `make setup`")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    # Linting needs a region name, not an account: fix one so results don't
    # depend on the contributor's AWS configuration.
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env.setdefault("AWS_REGION", env["AWS_DEFAULT_REGION"])
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_sam_validate_lint_accepts_the_template() -> None:
    result = run(tool("PGBACKUPS_SAM"), "validate", "--lint", "--template-file", TEMPLATE)
    assert result.returncode == 0, f"sam validate --lint failed:\n{result.stdout}{result.stderr}"


def test_cfn_lint_accepts_the_template() -> None:
    cfn_lint = tool("PGBACKUPS_SAM").parent / "cfn-lint"
    assert cfn_lint.is_file(), f"cfn-lint is not next to sam in {cfn_lint.parent}"
    result = run(cfn_lint, TEMPLATE)
    assert result.returncode == 0, f"cfn-lint found problems:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def checkov_results() -> dict[str, Any]:
    # Not --quiet: with it the JSON leaves out the skipped checks, whose reasons
    # are checked below.
    result = run(
        tool("PGBACKUPS_CHECKOV"),
        "-f",
        TEMPLATE.name,
        "--framework",
        "cloudformation",
        "--skip-download",
        "--compact",
        "-o",
        "json",
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no JSON report (exit {result.returncode}):\n{result.stderr}")
    reports = report if isinstance(report, list) else [report]
    (cloudformation,) = [r for r in reports if r.get("check_type") == "cloudformation"]
    summary = cloudformation["summary"]
    # A template checkov cannot read yields no failure either: make sure it read it.
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] >= len(load_template()["Resources"]), summary
    return cloudformation["results"]


def test_checkov_reports_no_failed_check(checkov_results: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in checkov_results.get("failed_checks", [])
    ]
    assert failed == [], "checkov failed checks (fix them, or skip with a reason):\n" + "\n".join(
        failed
    )


def test_every_checkov_skip_gives_its_reason(
    checkov_results: dict[str, Any], resources: dict[str, Any]
) -> None:
    skipped = checkov_results.get("skipped_checks", [])
    assert skipped, "checkov reported no skipped check: are the template's skips still read?"
    unexplained = [
        f"{c['check_id']} {c['resource']}"
        for c in skipped
        if c["check_result"].get("suppress_comment", "").strip() in ("", "No comment provided")
    ]
    assert unexplained == []

    declared = [
        (name, skip)
        for name, resource in resources.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert all(str(skip.get("comment", "")).strip() for _, skip in declared), declared
    # Every declared skip matches a check checkov ran: no stale or misspelt ids.
    reported = {(c["resource"].split(".")[-1], c["check_id"]) for c in skipped}
    assert {(name, skip["id"]) for name, skip in declared} == reported


def test_checkov_passes_the_api_and_authorizer_concurrency_check(
    checkov_results: dict[str, Any],
) -> None:
    """CKV_AWS_115 passes for both (reserved concurrency), with no waiver."""
    passed = {
        c["resource"].split(".")[-1]
        for c in checkov_results.get("passed_checks", [])
        if c["check_id"] == "CKV_AWS_115"
    }
    assert {"ApiFunction", "AuthorizerFunction"} <= passed, passed
