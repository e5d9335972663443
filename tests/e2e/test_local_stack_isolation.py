"""The local stack is its owner's: another user of the machine reads no secret and no
archive from it, and a caller without the token cannot make it hold a big body."""

from __future__ import annotations

import json
import os
import shutil
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
    import datetime, hashlib, hmac, json, sys, urllib.error, urllib.parse, urllib.request

    # The standard library only: the script must run wherever the checkout lives (a
    # folder `nobody` cannot read included), so it signs its requests itself (SigV4).
    info = json.loads(sys.argv[1])
    outcome = {}

    def attempt(what, call):
        try:
            call()
            outcome[what] = "allowed"
        except urllib.error.HTTPError as error:
            outcome[what] = f"HTTPError {error.code}: " + error.read().decode(errors="replace")[:200]
        except Exception as error:
            outcome[what] = type(error).__name__ + ": " + str(error)[:200]

    def signed(key, service, method, url, body=b"", headers=None):
        parts = urllib.parse.urlsplit(url)
        amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        payload = hashlib.sha256(body).hexdigest()
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        headers.update({"host": parts.netloc, "x-amz-date": amz_date, "x-amz-content-sha256": payload})
        names = sorted(headers)
        query = "&".join(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        )
        canonical = "\\n".join([
            method, parts.path or "/", query,
            "".join(f"{name}:{headers[name].strip()}\\n" for name in names),
            ";".join(names), payload,
        ])
        scope = f"{amz_date[:8]}/{info['region']}/{service}/aws4_request"
        to_sign = "\\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        secret = ("AWS4" + key[1]).encode()
        for part in (amz_date[:8], info["region"], service, "aws4_request"):
            secret = hmac.new(secret, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(secret, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={key[0]}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        request = urllib.request.Request(url, data=body or None, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.read()

    def secrets(key, action, document):
        return signed(
            key, "secretsmanager", "POST", info["aws"] + "/", json.dumps(document).encode(),
            {"content-type": "application/x-amz-json-1.1", "x-amz-target": "secretsmanager." + action},
        )

    for key in info["keys"]:
        s3 = info["aws"] + "/" + info["bucket"]
        invoke = info["lambda"] + "/2015-03-31/functions/" + info["function"] + "/invocations"
        attempt(key[0] + " list secrets", lambda: secrets(key, "ListSecrets", {}))
        attempt(key[0] + " read the token", lambda: secrets(key, "GetSecretValue", {"SecretId": info["token_secret"]}))
        attempt(key[0] + " read a database URL", lambda: secrets(key, "GetSecretValue", {"SecretId": info["url_secret"]}))
        attempt(key[0] + " list archives", lambda: signed(key, "s3", "GET", s3 + "?list-type=2"))
        attempt(key[0] + " read an archive", lambda: signed(key, "s3", "GET", s3 + "/" + info["archive"]))
        attempt(key[0] + " invoke", lambda: signed(key, "lambda", "POST", invoke, b"{}"))

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
    # -I: not even this user's site-packages; the script needs nothing but the stdlib.
    command = [python, "-I", "-c", ATTACKER, json.dumps(info)]
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
