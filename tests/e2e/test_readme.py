"""The README's CLI walk-through, run as written: each `console` block's commands in order,
in a folder beside a fresh local stack, each output compared with what the README shows.

What varies from run to run is masked on both sides (ids, times, sizes, ports, the
server's minor version); a README line ending in `…` matches any line starting the same.
The set-up is what the README's prose says: a database `shop` whose URL is in `shop.url`,
an empty `shop_copy` (Debian's PostgreSQL 15, as in the README) whose URL is in `copy.url`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import SAMPLE_SQL, RunningStack, start_stack

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```console\n(.*?)^```", re.S | re.M)
MASKS = [
    (re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b"), "<ID>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC\b"), "<TIME>"),
    (re.compile(r"\b\d{14}_"), "<STAMP>_"),
    (re.compile(r"\b\d+(\.\d)? (bytes?|kB|MB|GB)\b"), "<SIZE>"),
    (re.compile(r"\b(\d+h)?(\d+m)?\d+s\b"), "<DURATION>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<PORT>"),
    (re.compile(r"(PostgreSQL \d+)\.\d+"), r"\1.<MINOR>"),
    (re.compile(r"^[─┼\s]+$"), "<RULE>"),
    (re.compile(r"\s+"), " "),
]


@dataclass
class Step:
    command: str
    expected: list[str]


def steps(text: str) -> list[Step]:
    found: list[Step] = []
    for block in BLOCK.findall(text):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append(Step(line[2:], []))
            elif found:
                found[-1].expected.append(line)
    for step in found:
        while step.expected and not step.expected[-1].strip():
            step.expected.pop()
    return found


def masked(line: str) -> str:
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line.strip()


def matches(expected: list[str], actual: list[str]) -> bool:
    if len(expected) != len(actual):
        return False
    for want, got in zip(expected, actual, strict=True):
        want, got = masked(want), masked(got)
        if want.endswith("…") and got.startswith(want[:-1].rstrip()):
            continue
        if want != got:
            return False
    return True


@pytest.fixture(scope="module")
def beside_a_stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: EmbeddedPostgres,
    postgres15: EmbeddedPostgres,
) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("readme")
    stack: RunningStack = start_stack(base)
    try:
        folder = base / "work"
        folder.mkdir()
        (folder / ".pgbackups-local").symlink_to(stack.state_dir, target_is_directory=True)
        shop = postgres.create_database("readme_shop")
        postgres.psql(SAMPLE_SQL, "readme_shop")
        for name, url in (
            ("shop.url", shop),
            ("copy.url", postgres15.create_database("shop_copy")),
        ):
            (folder / name).write_text(url + "\n")
            (folder / name).chmod(0o600)
        yield folder
    finally:
        assert stack.stop() == 0


def test_the_readme_has_a_walk_through() -> None:
    commands = [step.command.split()[1] for step in steps(README.read_text())]
    for command in ("databases-add", "backups-create", "backups", "backups-download",
                    "backups-restore", "local"):  # fmt: skip
        assert command in commands


def test_each_readme_command_prints_what_the_readme_shows(beside_a_stack: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PGBACKUPS_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(beside_a_stack),
        PGBACKUPS_CONFIG=str(beside_a_stack / "no-login.json"),
        PGBACKUPS_PGTOOLS_DIR=os.environ.get("PGBACKUPS_PGTOOLS_DIR", ""),
        COLUMNS="200",
        TZ="UTC",
    )
    for step in steps(README.read_text()):
        result = subprocess.run(
            ["bash", "-c", step.command],
            cwd=beside_a_stack,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=180,
            check=False,
        )
        printed = result.stdout.rstrip("\n").splitlines()
        fails = any(line.startswith(" !     ") for line in step.expected)
        assert (result.returncode != 0) == fails, f"$ {step.command}\n{result.stdout}"
        assert matches(step.expected, printed), (
            f"$ {step.command}\nthe README shows:\n"
            + "\n".join(step.expected)
            + "\nit printed:\n"
            + result.stdout
        )


def test_the_files_the_readme_has_users_keep_in_the_project_folder_are_ignored_by_git() -> None:
    """URL files hold passwords and archives hold data: neither may be committed by mistake."""
    text = README.read_text()
    url_files = set(re.findall(r"`(?:[^`]*< )?([\w.-]+\.url)`", text))
    archives = set(re.findall(r"\b(\d{14}_\w+\.pgsql)\b", text))
    assert {"shop.url", "copy.url"} <= url_files and archives

    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        input="\n".join(sorted(url_files | archives)),
        cwd=README.parent,
        capture_output=True,
        text=True,
        check=False,
    )

    assert set(ignored.stdout.split()) == url_files | archives, ignored.stderr
