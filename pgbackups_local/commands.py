"""`pgbackups local`: the whole system on this machine, no AWS account, no Docker.

pgbackups local [--host 127.0.0.1] [--port 3000] [--state-dir .pgbackups-local]
                [--demo [--demo-pitr]] [--demo-size-mb N]
pgbackups local dispatch --at <RFC3339> [--state-dir .pgbackups-local]
pgbackups local pitr-capture [-d DATABASE] [--state-dir .pgbackups-local]
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import click

from pgbackups_cli.output import Failure
from pgbackups_cli.stack_file import DEFAULT_STATE_DIR, StackFileError, read_stack_file
from pgbackups_local.stack import (
    SHUTDOWN_GRACE_SECONDS,
    LocalStack,
    StackError,
    StackInfo,
)
from pgbackups_local.template import TEMPLATE

DEFAULT_DEMO_SIZE_MB = 300
DISPATCHER = "dispatcher.handler"
WAL_CAPTURE = "wal_capture.handler"


class _StopRequested(BaseException):
    """SIGINT/SIGTERM while the stack is still starting: unwind and clean up."""


class Rfc3339(click.ParamType):
    name = "RFC3339"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            at = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(
                f"{value!r} is not an RFC 3339 time (e.g. 2026-01-15T01:00:00+01:00)", param, ctx
            )
        if at.tzinfo is None:
            self.fail(f"{value!r} has no UTC offset (add Z or e.g. +01:00)", param, ctx)
        return at


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="The local stack's state directory; stack.json (API URL, token, endpoints) "
    "lives there while the stack runs.",
)


def _webhook_url(ctx: click.Context, param: click.Parameter, url: str | None) -> str | None:
    """What the dispatcher will send to: https, or http to this machine."""
    from pgbackups.adapters.alerts import check_webhook_url

    if url is None:
        return None
    try:
        return check_webhook_url(url)
    except ValueError as error:
        raise click.BadParameter(f"{error}, or http:// to this machine") from None


@click.group(invoke_without_command=True)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address the HTTP API listens on."
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=3000, show_default=True,
    help="Port of the HTTP API (0: any free port).",
)  # fmt: skip
@state_dir_option
@click.option(
    "--demo",
    is_flag=True,
    help="Also run an embedded PostgreSQL with sample data, registered as `demo`.",
)
@click.option(
    "--demo-pitr",
    is_flag=True,
    help="With --demo: also enable continuous backups (point-in-time recovery) on `demo`.",
)
@click.option(
    "--demo-size-mb", type=click.IntRange(1, 100_000), default=DEFAULT_DEMO_SIZE_MB,
    show_default=True, help="Approximate size of the demo database.",
)  # fmt: skip
@click.option(
    "--shutdown-grace", type=click.FloatRange(0, 900), default=SHUTDOWN_GRACE_SECONDS,
    hidden=True, help="Seconds running backups get to finish when the stack stops.",
)  # fmt: skip
@click.option(
    "--show-token", is_flag=True,
    help="Print the API token in the start-up banner (it is always in stack.json).",
)  # fmt: skip
@click.option(
    "--backup-lock", type=click.Choice(["off", "governance", "compliance"]), default=None,
    help="S3 Object Lock of what the stack writes (the template's BackupLock; default: "
    "its default, governance).",
)  # fmt: skip
@click.option(
    "--parameter", "parameters", multiple=True, metavar="NAME=VALUE",
    help="Override a template parameter, as `sam deploy --parameter-overrides` does "
    "(e.g. BackupTimeoutSeconds=60). Repeatable.",
)  # fmt: skip
@click.option(
    "--no-iam", is_flag=True,
    help="Do not enforce the template's IAM policies (every function acts as the "
    "stack's owner): to tell a policy problem from another one.",
)  # fmt: skip
@click.option(
    "--template", "template_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=str(TEMPLATE), show_default=False,
    help="The SAM template to run (default: the checkout's template.yaml), e.g. a copy "
    "with a policy changed.",
)  # fmt: skip
@click.option(
    "--alert-webhook", metavar="URL", callback=_webhook_url, envvar="PGBACKUPS_ALERT_WEBHOOK",
    help="Deliver alerts to this Slack-compatible webhook too (as the template's "
    "AlertWebhookUrl; plain http only on this machine; or PGBACKUPS_ALERT_WEBHOOK, which "
    "keeps a real webhook's URL off the command line). Alerts are printed in the log.",
)  # fmt: skip
@click.pass_context
def local(
    ctx: click.Context,
    host: str,
    port: int,
    state_dir: Path,
    demo: bool,
    demo_pitr: bool,
    demo_size_mb: int,
    shutdown_grace: float,
    show_token: bool,
    backup_lock: str | None,
    parameters: tuple[str, ...],
    no_iam: bool,
    template_path: Path,
    alert_webhook: str | None,
) -> None:
    """Run the local stack in the foreground: moto as AWS, the HTTP API, the backup
    workers and the hourly dispatcher, all from template.yaml. Ctrl-C stops it."""
    if ctx.invoked_subcommand is not None:
        return
    # The stack's own messages; the functions log JSON through powertools as on Lambda.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pgbackups.local").setLevel(logging.INFO)
    overrides = {}
    for parameter in parameters:
        name, equals, value = parameter.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{parameter!r} is not NAME=VALUE", param_hint="--parameter")
        overrides[name] = value
    if backup_lock is not None:
        overrides["BackupLock"] = backup_lock
    if alert_webhook:
        overrides["AlertWebhookUrl"] = alert_webhook  # into its secret, as on AWS
    stack = LocalStack(
        parameters=overrides,
        host=host,
        port=port,
        state_dir=state_dir,
        demo_size_mb=demo_size_mb if demo else None,
        demo_pitr=demo and demo_pitr,
        shutdown_grace=shutdown_grace,
        announce=lambda line: click.echo(f"  … {line}"),
        enforce_iam=not no_iam,
        template=template_path.resolve(),
    )
    _run_in_foreground(stack, show_token=show_token)


def _run_in_foreground(stack: LocalStack, *, show_token: bool = False) -> None:
    stop = threading.Event()
    phase = "starting"

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal phase
        if phase == "starting":
            phase = "stopping"
            raise _StopRequested(signum)
        if phase == "running":
            phase = "stopping"
            stop.set()
        # Already stopping: let the clean shutdown finish.

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    click.echo("Starting the pgbackups local stack…")
    try:
        info = stack.start()
    except _StopRequested:
        click.echo("Stopped before the stack was ready.")
        return
    except StackError as error:
        raise Failure(str(error)) from None
    except Exception as error:
        logging.getLogger("pgbackups.local").exception("the local stack could not start")
        raise Failure(f"the local stack could not start: {error}") from None
    if phase == "starting":
        phase = "running"
    click.echo(_banner(info, stack, show_token=show_token))
    while not stop.wait(1.0):
        pass
    click.echo("Stopping: running backups finish or are marked error, then the servers stop…")
    stack.stop()
    click.echo("Local stack stopped.")


def _banner(info: StackInfo, stack: LocalStack, *, show_token: bool = False) -> str:
    state = f" --state-dir {stack.state_dir}" if stack.state_dir != DEFAULT_STATE_DIR else ""
    auth = '-H "Authorization: Bearer $PGBACKUPS_TOKEN"'
    # Terminal scrollback and logs are read by more people than stack.json (mode 0600).
    read_token = (
        info.token
        if show_token
        else f'$(python3 -c \'import json; print(json.load(open("{stack.stack_file}"))["token"])\')'
    )
    paris_1am = datetime.now(ZoneInfo("Europe/Paris")).replace(
        hour=1, minute=0, second=0, microsecond=0
    )
    iam = (
        "each function runs with its own role from template.yaml, enforced"
        if stack.enforce_iam
        else "not enforced (--no-iam): every function acts as the stack's owner"
    )
    rows = [
        ("API", f"{info.api_url}   (routes under /v1)"),
        ("Dashboard", f"{info.api_url}/   (sign in with the token)"),
        ("Token", info.token if show_token else "in stack.json (--show-token prints it here)"),
        ("AWS", f"{info.aws_endpoint_url}   (moto, {info.region}: bucket {info.bucket}, "
         f"table {info.table})"),
        ("IAM", iam + ("" if not stack.enforce_iam else " (--no-iam turns it off)")),
        ("State", str(stack.stack_file)),
    ]  # fmt: skip
    if info.demo_database_url:
        rows.append(("Demo", "database `demo` registered (its URL is in stack.json)"))
    width = max(len(label) for label, _ in rows) + 2
    lines = [
        "",
        "pgbackups local stack is up (no AWS account, no Docker).",
        "",
        *(f"  {label:<{width}}{value}" for label, value in rows),
    ]
    db = "demo" if info.demo_database_url else "shop"
    folder = "" if stack.state_dir == DEFAULT_STATE_DIR else " with PGBACKUPS_API_URL/TOKEN below"
    lines += [
        "",
        "What it is not: its state lives in memory and is gone when it stops.",
        "",
        f"Try, in another terminal in this folder (`pgbackups` finds this stack{folder}):",
        *_path_hint(),
        "  pgbackups status",
    ]
    if not info.demo_database_url:
        lines.append(
            f"  pgbackups databases-add {db}   # asks for the URL of one of your PostgreSQL "
            "databases (hidden)"
        )
    lines += [
        f"  pgbackups backups-create -d {db}",
        f"  pgbackups backups -d {db}",
        f"  pgbackups backups-download -d {db}",
        f"  pgbackups local dispatch --at {paris_1am.isoformat()}{state}"
        "   # the dispatcher, as if it were 01:00 in Paris",
        "",
        "From any folder, or with curl:",
        f"  export PGBACKUPS_API_URL={info.api_url} PGBACKUPS_TOKEN={read_token}",
        f"  curl -s {auth} $PGBACKUPS_API_URL/v1/databases",
        f"  curl -s -X POST {auth} $PGBACKUPS_API_URL/v1/databases/{db}/backups",
        "",
        "Backups run in this process; the dispatcher runs at the top of every hour.",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def _path_hint() -> list[str]:
    """`export PATH=…` when the `pgbackups` beside this Python is not the one on PATH."""
    script = Path(sys.executable).parent / "pgbackups"
    found = shutil.which("pgbackups")
    if not script.exists() or (found and Path(found).resolve() == script.resolve()):
        return []
    return [
        f'  export PATH="{script.parent.resolve()}{os.pathsep}$PATH"   # puts `pgbackups` on PATH'
    ]


# -- dispatch --------------------------------------------------------------------------------


@local.command()
@click.option(
    "--at", "at", type=Rfc3339(), required=True, help="The time the dispatcher believes it is."
)
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the dispatcher's answer as JSON.")
def dispatch(at: datetime, state_dir: Path, as_json: bool) -> None:
    """Run the hourly dispatcher once against the running stack, as if the clock said AT."""
    import boto3

    from pgbackups_local.lambda_runtime import scheduled_event
    from pgbackups_local.template import load_template, resources_of_type

    try:
        info = read_stack_file(state_dir)
    except StackFileError as error:
        raise Failure(str(error)) from None
    template = load_template()
    scheduled = [
        (logical_id, event_name)
        for logical_id, function in resources_of_type(template, "AWS::Serverless::Function").items()
        for event_name, event in (function["Properties"].get("Events") or {}).items()
        if event.get("Type") == "Schedule" and function["Properties"]["Handler"] == DISPATCHER
    ]
    if len(scheduled) != 1:
        raise Failure("template.yaml should have exactly one dispatcher schedule")
    (logical_id, event_name) = scheduled[0]
    client = boto3.session.Session(
        aws_access_key_id=info["aws_access_key_id"],
        aws_secret_access_key=info["aws_secret_access_key"],
        region_name=info["region"],
    ).client("lambda", endpoint_url=info["lambda_endpoint_url"])
    event = scheduled_event(at, info["region"], f"pgbackups-local-{logical_id}{event_name}")
    response = client.invoke(
        FunctionName=info["functions"][logical_id],
        InvocationType="RequestResponse",
        Payload=json.dumps(event).encode(),
    )
    answer = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        raise Failure(
            f"the dispatcher failed: {answer.get('errorType')}: {answer.get('errorMessage')}"
        )
    if as_json:
        click.echo(json.dumps({"at": event["time"], **answer}, indent=2))
        return
    click.echo(f"-----> Dispatcher ran as of {event['time']}")
    ids = answer.get("scheduled", [])
    if not ids:
        click.echo("       No periodic backup is due at this hour.")
    else:
        databases = _databases_of(info, ids)
        plural = "s" if len(ids) != 1 else ""
        click.echo(f"       Scheduled {len(ids)} periodic backup{plural}:")
        for backup_id in ids:
            click.echo(f"         {databases.get(backup_id, '?'):<24} {backup_id}")
    reaped, pruned = len(answer.get("reaped", [])), len(answer.get("pruned", []))
    click.echo(f"       Stale backups failed: {reaped}; backups pruned by retention: {pruned}.")


# -- pitr-capture ------------------------------------------------------------------------------


@local.command("pitr-capture")
@click.option(
    "--database", "-d", help="Only this database (default: each with continuous backups)."
)
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the captures' answers as JSON.")
def pitr_capture(database: str | None, state_dir: Path, as_json: bool) -> None:
    """Run one WAL capture now against the running stack (the schedule does it every minute)."""
    import boto3
    import requests

    from pgbackups_local.template import load_template, resources_of_type

    try:
        info = read_stack_file(state_dir)
    except StackError as error:
        raise click.ClickException(str(error)) from None
    (logical_id,) = [
        logical_id
        for logical_id, function in resources_of_type(
            load_template(), "AWS::Serverless::Function"
        ).items()
        if function["Properties"]["Handler"] == WAL_CAPTURE
    ]
    if database is None:
        headers = {"Authorization": f"Bearer {info['token']}"}
        api = info["api_url"]
        listed = requests.get(f"{api}/v1/databases", headers=headers, timeout=30).json()
        names = [
            d["name"]
            for d in listed.get("databases", [])
            if requests.get(f"{api}/v1/databases/{d['name']}/pitr", headers=headers, timeout=30)
            .json()
            .get("enabled")
        ]
    else:
        names = [database]
    client = boto3.session.Session(
        aws_access_key_id=info["aws_access_key_id"],
        aws_secret_access_key=info["aws_secret_access_key"],
        region_name=info["region"],
    ).client("lambda", endpoint_url=info["lambda_endpoint_url"])
    answers = []
    for name in names:
        response = client.invoke(
            FunctionName=info["functions"][logical_id],
            InvocationType="RequestResponse",
            Payload=json.dumps({"database": name}).encode(),
        )
        answer = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise click.ClickException(
                f"the capture of {name} failed: {answer.get('errorType')}: "
                f"{answer.get('errorMessage')}"
            )
        answers.append(answer)
    if as_json:
        click.echo(json.dumps(answers, indent=2))
        return
    if not answers:
        click.echo("       No database has continuous backups enabled.")
    for answer in answers:
        click.echo(f"-----> Captured {answer['database']}: {answer['outcome']}")
        click.echo(
            f"       {len(answer['segments'])} complete segment(s)"
            + (f", partial {answer['partial']}" if answer["partial"] else "")
            + (f", base backup {answer['base_backup']} started" if answer["base_backup"] else "")
        )
        if answer.get("broken_reason"):
            click.echo(f" !     Chain broken: {answer['broken_reason']}")


def _databases_of(info: dict[str, Any], backup_ids: list[str]) -> dict[str, str]:
    """backup id → database name, looked up through the API (best effort)."""
    import requests

    wanted = set(backup_ids)
    found: dict[str, str] = {}
    headers = {"Authorization": f"Bearer {info['token']}"}
    try:
        databases = requests.get(f"{info['api_url']}/v1/databases", headers=headers, timeout=10)
        for database in databases.json().get("databases", []):
            name = database["name"]
            page = requests.get(
                f"{info['api_url']}/v1/databases/{name}/backups",
                params={"method": "periodic", "limit": "10"},
                headers=headers,
                timeout=10,
            ).json()
            found.update({b["id"]: name for b in page.get("backups", []) if b["id"] in wanted})
    except (requests.RequestException, ValueError, KeyError, AttributeError):
        pass
    return found
