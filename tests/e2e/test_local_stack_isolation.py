"""The local stack is its owner's: another user of the machine reads no secret and no
archive from it, and a caller without the token cannot make it hold a big body."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from pgbackups_local.postgres import EmbeddedPostgres
from tests.e2e.conftest import RunningStack, wait_for_backup

pytestmark = pytest.mark.e2e

OTHER_USER = "nobody"
# What another user tries, with whatever key they can guess (the stack's former fixed
# one included) and without any: every attempt prints one JSON line {what: outcome}.
ATTACKER = textwrap.dedent(
    """
    import json, sys, urllib.request, urllib.error
    sys.path[:0] = json.loads(sys.argv[2])
    import boto3
    from botocore.config import Config

    info = json.loads(sys.argv[1])
    outcome = {}

    def attempt(what, call):
        try:
            call()
            outcome[what] = "allowed"
        except Exception as error:
            outcome[what] = type(error).__name__ + ": " + str(error)[:200]

    for key in info["keys"]:
        session = boto3.session.Session(
            aws_access_key_id=key[0], aws_secret_access_key=key[1], region_name=info["region"]
        )
        config = Config(retries={"max_attempts": 1})
        sm = session.client("secretsmanager", endpoint_url=info["aws"], config=config)
        s3 = session.client("s3", endpoint_url=info["aws"], config=config)
        aws_lambda = session.client("lambda", endpoint_url=info["lambda"], config=config)
        attempt(key[0] + " list secrets", lambda: sm.list_secrets())
        attempt(key[0] + " read the token", lambda: sm.get_secret_value(SecretId=info["token_secret"]))
        attempt(key[0] + " read a database URL", lambda: sm.get_secret_value(SecretId=info["url_secret"]))
        attempt(key[0] + " list archives", lambda: s3.list_objects_v2(Bucket=info["bucket"]))
        attempt(key[0] + " read an archive", lambda: s3.get_object(Bucket=info["bucket"], Key=info["archive"]))
        attempt(key[0] + " invoke", lambda: aws_lambda.invoke(FunctionName=info["function"], Payload=b"{}"))

    def unsigned(url):
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.read()

    attempt("moto's data dump", lambda: unsigned(info["aws"] + "/moto-api/data.json"))
    attempt("unsigned archive list", lambda: unsigned(info["aws"] + "/" + info["bucket"]))
    attempt("stack.json", lambda: open(info["stack_file"]).read())
    print(json.dumps(outcome))
    """
)


def run_as(user: str | None, info: dict[str, Any]) -> dict[str, str]:
    """The attacker's script as `user` (None: as ourselves, the stack's owner)."""
    python = sys.executable if user is None else interpreter_for(user)
    paths = [p for p in site.getsitepackages() if Path(p).is_dir()]
    command = [python, "-c", ATTACKER, json.dumps(info), json.dumps(paths)]
    if user is not None:
        command = [runuser(), "-u", user, "--", *command]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LC_ALL": "C.UTF-8"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False, cwd="/")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def runuser() -> str:
    found = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    assert found, "util-linux's runuser is needed to act as another user"
    return found


def interpreter_for(user: str) -> str:
    """A Python that `user` may run (our venv's may sit under a private home)."""
    for candidate in (str(Path(sys.executable).resolve()), "/usr/bin/python3"):
        probe = subprocess.run(
            [runuser(), "-u", user, "--", candidate, "-c", "pass"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    pytest.fail(f"no Python interpreter that {user} may run")


@pytest.fixture(scope="module")
def stack_with_a_backup(
    local_stack: RunningStack, postgres: EmbeddedPostgres
) -> tuple[RunningStack, dict[str, Any]]:
    name = f"db_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(name)
    api = local_stack.api()
    answer = api.post(f"{local_stack.api_url}/v1/databases", json={"name": name, "url": url})
    assert answer.status_code == 201, answer.text
    backup = api.post(f"{local_stack.api_url}/v1/databases/{name}/backups").json()
    assert wait_for_backup(local_stack, name, backup["id"])["status"] == "done"
    info = local_stack.info
    sm = boto3.client(
        "secretsmanager",
        endpoint_url=info["aws_endpoint_url"],
        region_name=info["region"],
        aws_access_key_id=info["aws_access_key_id"],
        aws_secret_access_key=info["aws_secret_access_key"],
    )
    names = [s["Name"] for s in sm.list_secrets()["SecretList"]]
    target = {
        "aws": info["aws_endpoint_url"],
        "lambda": info["lambda_endpoint_url"],
        "region": info["region"],
        "bucket": info["bucket"],
        "archive": f"databases/{name}/backups/{backup['id']}.pgsql",
        "token_secret": next(n for n in names if "token" in n.lower()),
        "url_secret": next(n for n in names if n.endswith(f"/databases/{name}")),
        "function": next(iter(info["functions"].values())),
        "stack_file": str(local_stack.stack_file),
    }
    return local_stack, target


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root (runuser)")
def test_another_user_reads_no_secret_and_no_archive(
    stack_with_a_backup: tuple[RunningStack, dict[str, Any]],
) -> None:
    stack, target = stack_with_a_backup
    guesses = [["local", "local"], ["testing", "testing"], ["AKIAIOSFODNN7EXAMPLE", "x" * 40]]

    outcome = run_as(OTHER_USER, target | {"keys": guesses})

    assert outcome, "the attacker's script ran"
    allowed = [what for what, result in outcome.items() if result == "allowed"]
    assert allowed == [], outcome
    assert "PermissionError" in outcome["stack.json"]
    assert "AccessDenied" in outcome["local read the token"], outcome
    assert stack.info["token"] not in json.dumps(outcome)


def test_the_owner_with_the_stack_key_reads_them(
    stack_with_a_backup: tuple[RunningStack, dict[str, Any]],
) -> None:
    """The same script, as the owner with stack.json's key: everything answers."""
    stack, target = stack_with_a_backup
    key = [stack.info["aws_access_key_id"], stack.info["aws_secret_access_key"]]

    outcome = run_as(None, target | {"keys": [key]})

    signed = {what: result for what, result in outcome.items() if what.startswith(key[0])}
    assert signed and all(result == "allowed" for result in signed.values()), outcome
    assert outcome["stack.json"] == "allowed"
    assert outcome["moto's data dump"] != "allowed"
    assert stack.info["token"] not in stack.log(), "the banner printed the token unasked"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_big_unauthenticated_body_is_refused_without_being_held(
    local_stack: RunningStack,
) -> None:
    url = f"{local_stack.api_url}/v1/databases"
    body = b"x" * (50 * 1024 * 1024)
    pid = local_stack.process.pid
    requests.get(url, timeout=30)  # warm: the first answers allocate what they keep
    before = rss_bytes(pid)

    without_token = requests.post(url, data=body, timeout=120)
    wrong_token = requests.post(
        url, data=body, headers={"Authorization": "Bearer nope"}, timeout=120
    )
    with_token = local_stack.api().post(url, data=body, timeout=120)

    grown = rss_bytes(pid) - before
    assert (without_token.status_code, wrong_token.status_code) == (401, 403)
    assert with_token.status_code == 413
    assert with_token.json() == {"message": "Request Too Large"}
    assert grown < 20 * 1024 * 1024, f"the stack grew by {grown / 2**20:.1f} MiB"
    assert local_stack.api().get(url, timeout=30).status_code == 200  # still serving
