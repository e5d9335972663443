"""`login`: check an API URL and token, and save them for every later command."""

from __future__ import annotations

import sys

import click

from pgbackups_cli.client import ApiClient
from pgbackups_cli.config import config_path, save_config
from pgbackups_cli.output import note, say
from pgbackups_cli.session import api_options, database_option, session


@click.command("login")
@api_options
@database_option
def login() -> None:
    """Save --api-url and --token (and a default --database) in your config file.

    The token is checked against the API first. The file is readable by you
    only; PGBACKUPS_CONFIG chooses another path (a `.toml` one is written as TOML).
    """
    state = session()
    if not state.api_url:
        raise click.UsageError("login needs --api-url URL (the API's base URL)")
    token = state.token
    if not token:
        if not sys.stdin.isatty():
            raise click.UsageError("login needs --token TOKEN")
        token = click.prompt("API token", hide_input=True).strip()
    api_url = state.api_url.strip().rstrip("/")
    client = ApiClient(api_url, token, token_from="--token")  # noqa: S106 (a label, not a secret)
    answer = client.get("/v1/databases")
    path = config_path()
    save_config(path, api_url, token, state.database)
    count = len(answer.get("databases", []))
    say(f"Logged in to {api_url} ({count} database{'' if count == 1 else 's'})")
    note(f"Saved to {path} (readable by you only)")
