"""The `pgbackups` command line: the seed's backup commands, on the HTTP API."""

from __future__ import annotations

from typing import Any

import click

from pgbackups_cli.backups import COMMANDS as BACKUP_COMMANDS
from pgbackups_cli.client import ApiFailure
from pgbackups_cli.databases import databases, databases_add, databases_remove
from pgbackups_cli.login import login
from pgbackups_cli.output import Failure
from pgbackups_cli.pitr import COMMANDS as PITR_COMMANDS
from pgbackups_cli.session import api_options, database_option


class LocalStackCommand(click.Group):
    """`pgbackups local`: the dev-only local stack, imported only when it is asked for
    (it needs the `local` extra: moto, PyYAML, the embedded PostgreSQL)."""

    def __init__(self) -> None:
        super().__init__(name="local", help="Run the local stack (moto, the API, the workers).")
        self._loaded: click.Group | None = None

    def _group(self) -> click.Group:
        if self._loaded is None:
            try:
                from pgbackups_local.commands import local
            except ImportError as missing:
                raise click.ClickException(
                    f"`pgbackups local` needs the project's `local` extra ({missing.name} is "
                    "missing): pip install 'pgbackups[local]', or run `make local`"
                ) from None
            self._loaded = local
        return self._loaded

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self._group().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        return self._group().invoke(ctx)

    def get_short_help_str(self, limit: int = 45) -> str:
        return "Run the local stack (moto, the API, the workers), or drive it."


class PgBackupsGroup(click.Group):
    """Lists commands in the order they are added, and turns API failures into ` !` lines."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiFailure as failure:
            raise Failure(failure.message) from None


@click.group(cls=PgBackupsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@api_options
@database_option
def main() -> None:
    """Serverless PostgreSQL backups: manage databases and their backups.

    The API and token come from --api-url/--token, else PGBACKUPS_API_URL and
    PGBACKUPS_TOKEN, else the file `pgbackups login` saves, else the local
    stack's ./.pgbackups-local/stack.json.
    """


for command in (
    databases,
    databases_add,
    databases_remove,
    *BACKUP_COMMANDS,
    *PITR_COMMANDS,
    login,
):
    main.add_command(command)
main.add_command(LocalStackCommand())
