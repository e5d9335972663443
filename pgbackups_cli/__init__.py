"""The `pgbackups` command line: the seed's backup commands, on the HTTP API.

Start-up is kept short (`make bench` measures it): the local stack's commands
are loaded only when `pgbackups local …` runs, rich only by the commands that
draw, boto3 and pydantic by none.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from pgbackups_cli.audit import COMMANDS as AUDIT_COMMANDS
from pgbackups_cli.backups import COMMANDS as BACKUP_COMMANDS
from pgbackups_cli.client import ApiFailure
from pgbackups_cli.databases import COMMANDS as DATABASE_COMMANDS
from pgbackups_cli.holds import COMMANDS as HOLD_COMMANDS
from pgbackups_cli.login import COMMANDS as LOGIN_COMMANDS
from pgbackups_cli.output import Failure, Interrupted
from pgbackups_cli.pitr import COMMANDS as PITR_COMMANDS
from pgbackups_cli.restores import COMMANDS as RESTORE_COMMANDS
from pgbackups_cli.session import api_options, database_option
from pgbackups_cli.tokens import COMMANDS as TOKEN_COMMANDS
from pgbackups_cli.verifications import COMMANDS as VERIFICATION_COMMANDS

# Commands that live in other packages, imported when used: name → (module, attribute, help).
LAZY_COMMANDS = {
    "local": (
        "pgbackups_local.commands",
        "local",
        "Run the local stack: moto as AWS, the HTTP API, the workers (dev only).",
    ),
}


class PgBackupsGroup(click.Group):
    """Lists commands in the order they are added, loads the lazy ones on use, and turns
    API failures into ` !` lines and Ctrl-C into exit 130."""

    _formatting_help = False

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # `pgbackups --help` lists the lazy commands without importing them.
        self._formatting_help = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._formatting_help = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *LAZY_COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            if ctx.resilient_parsing or self._formatting_help:
                return _placeholder(cmd_name)
            module, attribute, _ = LAZY_COMMANDS[cmd_name]
            try:
                command: click.Command = getattr(importlib.import_module(module), attribute)
            except ImportError as error:
                raise Failure(
                    f"`pgbackups {cmd_name}` needs the project's `local` extra "
                    f"(pip install -e '.[local]' in a clone): {error}"
                ) from None
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiFailure as failure:
            raise Failure(failure.message) from None
        except KeyboardInterrupt:
            raise Interrupted("Interrupted.") from None


def _placeholder(name: str) -> click.Command:
    return click.Command(name, help=LAZY_COMMANDS[name][2])


@click.group(cls=PgBackupsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pgbackups", prog_name="pgbackups")
@api_options
@database_option
def main() -> None:
    """Serverless PostgreSQL backups: manage databases and their backups.

    The API and token come from --api-url/--token, else PGBACKUPS_API_URL and
    PGBACKUPS_TOKEN, else the file `pgbackups login` saves, else the local
    stack's ./.pgbackups-local/stack.json. Each command says which API it uses
    unless it is this folder's local stack.
    """


for command in (
    *DATABASE_COMMANDS,
    *BACKUP_COMMANDS,
    *HOLD_COMMANDS,
    *RESTORE_COMMANDS,
    *VERIFICATION_COMMANDS,
    *PITR_COMMANDS,
    *TOKEN_COMMANDS,
    *AUDIT_COMMANDS,
    *LOGIN_COMMANDS,
):
    main.add_command(command)
