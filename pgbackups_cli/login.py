"""`login`, `logout`, `status`: which API the CLI talks to, and saving it for later commands."""

from __future__ import annotations

import sys
from typing import Any

import click

from pgbackups_cli import health
from pgbackups_cli.client import ApiClient, ApiFailure, TokenRefused
from pgbackups_cli.config import config_path, normalized_api_url, remove_config, save_config
from pgbackups_cli.output import Failure, note, print_fields, say
from pgbackups_cli.session import api_options, database_option, session


@click.command("login")
@api_options
@database_option
def login() -> None:
    """Save --api-url and --token (and a default --database) in your config file.

    The token is checked against the API first, and the database must exist.
    The file is readable by you only; PGBACKUPS_CONFIG chooses another path
    (a `.toml` one is written as TOML).
    """
    state = session()
    api_url = normalized_api_url(state.api_url)
    if not api_url:
        raise click.UsageError("login needs --api-url URL (the API's base URL)")
    token = state.token
    if not token:
        if not sys.stdin.isatty():
            raise click.UsageError("login needs --token TOKEN")
        token = click.prompt("API token", hide_input=True).strip()
    client = ApiClient(api_url, token, token_from="--token")  # noqa: S106 (a label, not a secret)
    names = sorted(database["name"] for database in client.get("/v1/databases")["databases"])
    if state.database is not None and state.database not in names:
        known = f"it has {', '.join(names)}" if names else "it has no database yet"
        raise Failure(
            f"no database named {state.database} at {api_url} ({known}): nothing was saved"
        )
    path = config_path()
    save_config(path, api_url, token, state.database)
    count = len(names)
    say(f"Logged in to {api_url} ({count} database{'' if count == 1 else 's'})")
    note(f"Saved to {path} (readable by you only)")


@click.command("logout")
def logout() -> None:
    """Remove the login saved by `pgbackups login`."""
    path = config_path()
    if remove_config(path):
        say(f"Logged out: {path} removed")
    else:
        say(f"Not logged in: there is no {path}")


@click.command("status")
@api_options
@database_option
def status() -> None:
    """Which API the commands use, where that came from, whether it answers, and the
    databases that are not healthy, with why. Exits 1 when one is failing (for cron
    and CI), 0 otherwise."""
    state = session()
    state.silent = True  # the fields below say it all
    config = state.config()
    fields = [
        ("API", config.api_url),
        ("From", config.api_url_from),
        ("Token from", config.token_from),
    ]
    if config.database:
        fields.append(("Database", config.database))
    failure: str | None = None
    unhealthy: list[dict[str, Any]] = []
    try:
        databases = state.client().get("/v1/databases")["databases"]
    except TokenRefused:
        failure = f"the API refused the token ({config.token_from})"
        fields.append(("Server", "reachable, token refused"))
    except ApiFailure as error:
        failure = error.message
        fields.append(("Server", "unreachable"))
    else:
        fields.append(("Server", "reachable, token accepted"))
        names = [database["name"] for database in databases]
        fields.append(("Databases", ", ".join(names) if names else "none yet"))
        unhealthy = health.not_ok(databases)
        if unhealthy:
            fields.append(("Health", health.summary(unhealthy)))
    print_fields("pgbackups status", fields)
    health.print_health(unhealthy)
    if failure is not None:
        raise Failure(failure)
    failing = [d["name"] for d in unhealthy if d["health"]["status"] == "failing"]
    if failing:
        count = f"{len(failing)} database{' is' if len(failing) == 1 else 's are'}"
        raise Failure(f"{count} failing: {', '.join(failing)}")


COMMANDS = [login, logout, status]
