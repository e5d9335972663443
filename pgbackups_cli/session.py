"""What one invocation knows: its flags, the API it resolved, the database it is about.

`--api-url`, `--token` and `--database/-d` are accepted both before the command
(`pgbackups -d shop backups`) and on it (`pgbackups backups -d shop`); the one
on the command wins. Their values are gathered here, and the configuration is
resolved (see `pgbackups_cli.config`) only when a command needs the API, so
`--help` and `backups-restore --file` work with nothing configured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from pgbackups.domain.names import BACKUP_ID, DATABASE_NAME, DATABASE_NAME_RULE
from pgbackups_cli.client import ApiClient, database_path
from pgbackups_cli.config import ApiConfig, ConfigError, Flags, resolve
from pgbackups_cli.output import Failure, Interrupted, dim

LATEST = "latest"


@dataclass
class Session:
    api_url: str | None = None
    token: str | None = None
    database: str | None = None
    silent: bool = False  # -s: nothing on stderr but errors
    _config: ApiConfig | None = field(default=None, repr=False)
    _client: ApiClient | None = field(default=None, repr=False)
    _database_name: str | None = field(default=None, repr=False)

    @property
    def flags(self) -> Flags:
        return Flags(api_url=self.api_url, token=self.token, database=self.database)

    def config(self) -> ApiConfig:
        if self._config is None:
            try:
                self._config = resolve(self.flags)
            except ConfigError as error:
                raise Failure(str(error)) from None
        return self._config

    def client(self) -> ApiClient:
        if self._client is None:
            config = self.config()
            hint = (
                " (is `pgbackups local` still running in this folder?)"
                if config.local_stack
                else ""
            )
            self._client = ApiClient(
                config.api_url, config.token, token_from=config.token_from, hint_unreachable=hint
            )
            if not config.local_stack and not self.silent:
                # Only this folder's own local stack goes without saying.
                dim(f"Using {config.api_url} (from {config.api_url_from})")
        return self._client

    def database_name(self) -> str:
        """The database the command is about: configured, else the only one there is."""
        if self._database_name is None:
            self._database_name = self._find_database_name()
        return self._database_name

    def _find_database_name(self) -> str:
        configured = self.config().database
        if configured is not None:
            return check_database_name(configured, "--database")
        databases = self.client().get("/v1/databases")["databases"]
        names = [database["name"] for database in databases]
        if len(names) == 1:
            return str(names[0])
        if not names:
            raise Failure(
                "No database registered yet. Add one with `pgbackups databases-add NAME --url -`."
            )
        raise click.UsageError(
            f"There are {len(names)} databases: pass --database/-d with one of "
            f"{', '.join(sorted(names))} (or set PGBACKUPS_DATABASE)."
        )

    def database_path(self, *rest: str) -> str:
        return database_path(self.database_name(), *rest)


def session(ctx: click.Context | None = None) -> Session:
    context = ctx or click.get_current_context()
    return context.find_root().ensure_object(Session)


def check_database_name(name: str, option: str) -> str:
    if not DATABASE_NAME.match(name):
        # The API's own words for a name it refuses.
        raise click.UsageError(f"{option}: the database name must be {DATABASE_NAME_RULE}")
    return name


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    state = session(ctx)
    if value is not None and param.name is not None:
        setattr(state, param.name, value)


def _backup_ref(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if value.lower() == LATEST:
        return LATEST
    if not BACKUP_ID.match(value.upper()):
        raise click.BadParameter(
            f"{value!r} is not a backup id (26 letters and digits, as `pgbackups backups` "
            "lists them)",
            ctx=ctx,
            param=param,
        )
    return value.upper()


def _database(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        check_database_name(value, "--database")
    _remember(ctx, param, value)


def api_options[F: Callable[..., Any]](function: F) -> F:
    """`--api-url` and `--token`, stored on the session (valid before or after the command)."""
    function = click.option(
        "--token",
        metavar="TOKEN",
        expose_value=False,
        callback=_remember,
        help="API token [env: PGBACKUPS_TOKEN].",
    )(function)
    function = click.option(
        "--api-url",
        metavar="URL",
        expose_value=False,
        callback=_remember,
        help="API base URL [env: PGBACKUPS_API_URL].",
    )(function)
    return function


def database_option[F: Callable[..., Any]](function: F) -> F:
    return click.option(
        "--database",
        "-d",
        metavar="NAME",
        expose_value=False,
        callback=_database,
        help="Database name; optional when only one exists [env: PGBACKUPS_DATABASE].",
    )(function)


def json_option[F: Callable[..., Any]](function: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the API's JSON instead of text."
    )(function)


def silent_option[F: Callable[..., Any]](function: F) -> F:
    def remember(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        session(ctx).silent = session(ctx).silent or value
        return value

    return click.option(
        "--silent",
        "-s",
        is_flag=True,
        callback=remember,
        help="No progress and no messages on stderr but errors.",
    )(function)


def yes_option[F: Callable[..., Any]](function: F) -> F:
    return click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")(function)


def backup_option[F: Callable[..., Any]](help_text: str) -> Callable[[F], F]:
    return click.option(
        "--backup",
        "-b",
        "backup_ref",
        metavar="ID",
        callback=_backup_ref,
        help=help_text,
    )


def confirm(question: str) -> None:
    """Failure (exit 1) unless the user says yes; no terminal to ask counts as no."""
    try:
        agreed = click.confirm(question, default=False)
    except click.Abort as error:
        click.echo(err=True)
        if isinstance(error.__context__, KeyboardInterrupt):
            raise Interrupted("Cancelled: nothing was changed.") from None
        agreed = False  # no terminal, or end of input
    if not agreed:
        raise Failure("Cancelled: nothing was changed (pass --yes to skip this question).")
