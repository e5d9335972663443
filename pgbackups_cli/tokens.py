"""`tokens`, `tokens-create`, `tokens-revoke`: API tokens with a role."""

from __future__ import annotations

import click

from pgbackups_cli.client import segment
from pgbackups_cli.output import _table, human_time, note, print_json, print_table, say
from pgbackups_cli.session import api_options, confirm, json_option, session, yes_option

ROLES = ("read", "operate", "admin")


@click.command("tokens")
@api_options
@json_option
def tokens(as_json: bool) -> None:
    """List the API tokens (never their secrets)."""
    answer = session().client().get("/v1/tokens")
    if as_json:
        print_json(answer)
        return
    found = answer["tokens"]
    if not found:
        say(
            "No tokens yet but the deploy-time one. Add one with `pgbackups tokens-create NAME --role read`."
        )
        return
    table = _table("NAME", "ROLE", "CREATED", "EXPIRES", "LAST USED", keep_whole={"NAME": 4})
    for token in found:
        expires = human_time(token.get("expires_at")) if token.get("expires_at") else "never"
        if token.get("expired"):
            expires = f"[red]expired {expires}[/]"
        table.add_row(
            token["name"],
            token["role"],
            human_time(token.get("created_at")),
            expires,
            human_time(token.get("last_used_at")) if token.get("last_used_at") else "never",
        )
    click.echo("=== API tokens")
    print_table(table)


@click.command("tokens-create")
@click.argument("name")
@click.option("--role", "-r", type=click.Choice(ROLES), required=True, help="What it may do.")
@click.option(
    "--expires-in",
    "expires_in_days",
    type=click.IntRange(1, 3650),
    metavar="DAYS",
    help="Refused after this many days (default: never).",
)
@api_options
def tokens_create(name: str, role: str, expires_in_days: int | None) -> None:
    """Create token NAME with a role: read (list, show, download), operate (also back up,
    restore elsewhere, schedules, retention) or admin (everything).

    The secret is printed once, alone on stdout (`… > token.txt`); it cannot be shown again.
    """
    body: dict[str, object] = {"name": name, "role": role}
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    created = session().client().post("/v1/tokens", body)
    expires = human_time(created["expires_at"]) if created.get("expires_at") else "never"
    say(f"Token {created['name']} created: role {created['role']}, expires {expires}", err=True)
    note("Its secret follows; it is shown this once, so keep it now.", err=True)
    click.echo(created["token"])


@click.command("tokens-revoke")
@click.argument("name")
@yes_option
@api_options
def tokens_revoke(name: str, yes: bool) -> None:
    """Revoke token NAME: requests with it are refused within a minute."""
    if not yes:
        confirm(f"Revoke token {name}?")
    session().client().delete(f"/v1/tokens/{segment(name)}")
    say(f"Token {name} revoked: requests with it are refused within a minute")


COMMANDS = (tokens, tokens_create, tokens_revoke)
