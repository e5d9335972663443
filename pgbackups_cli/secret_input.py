"""Connection URLs carry passwords: they may come from anywhere but the command line.

Each URL option also reads an environment variable, `-` reads the URL from
standard input (one line), and with nothing given on a terminal the URL is
asked for with hidden input, so the password need not sit in the CLI's argv
(readable by every user of the machine through `ps` or /proc) or in the
shell's history. A URL with a password given on the command line itself is
refused (`refuse_password_on_argv`), saying these three ways instead.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import click
from click.core import ParameterSource

STDIN = "-"
SCHEMES = ("postgres://", "postgresql://")


def _read_stdin(ctx: click.Context, option: str) -> str:
    used = ctx.meta.setdefault("pgbackups.stdin_used_by", option)
    if used != option:
        raise click.UsageError(f"{used} already reads standard input: give {option} otherwise")
    line = sys.stdin.readline().strip()
    if not line:
        raise click.UsageError(f"{option} -: standard input held no URL")
    return line


def has_password(url: str) -> bool:
    """Whether `url` holds a password: `user:password@` (read as libpq does: up to the
    first `@` or `/`), or a `password` parameter in its query (names may be %-encoded)."""
    credentials = re.match(r"([^@/]*)@", url.partition("://")[2])
    in_authority = credentials is not None and credentials.group(1).partition(":")[2] != ""
    query = url.partition("?")[2]
    in_query = any(key.strip() == "password" and value for key, value in parse_qsl(query))
    return in_authority or in_query


def refuse_password_on_argv(option: str, value: str, envvar: str | None = None) -> None:
    """A usage error when `value`, given to `option` on the command line, holds a password.

    The message says how to give it instead and never repeats the URL.
    """
    if not has_password(value):
        return
    environment = f"set {envvar}" if envvar else "set its PGBACKUPS_… environment variable"
    raise click.UsageError(
        f"{option}: this URL holds a password, and a command line is shown to every user "
        f"of this machine (ps) and kept in your shell's history. Pass {option} - and the "
        f"URL on standard input (e.g. {option} - < shop.url), {environment}, or leave "
        f"{option} out on a terminal to be asked for it with hidden input"
    )


def typed_on_command_line(ctx: click.Context, param: click.Parameter) -> bool:
    """Whether the option's value was typed on the command line (not the env, not stdin)."""
    return ctx.get_parameter_source(str(param.name)) == ParameterSource.COMMANDLINE


def url_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The URL of a `--…-url` option: the value, the env var, stdin (`-`), or None."""
    option = param.opts[0]
    if value == STDIN:
        value = _read_stdin(ctx, option)
    if value is None:
        return None
    if not value.startswith(SCHEMES):
        raise click.BadParameter("it must start with postgres:// or postgresql://", ctx, param)
    return value


def ask_for_url(option: str, envvar: str, what: str) -> str:
    """Ask on the terminal (hidden input); a usage error saying how to give it otherwise."""
    if not sys.stdin.isatty():
        raise click.UsageError(
            f"{option} is required: pass {option} - and the URL on standard input, "
            f"set {envvar}, or run this on a terminal to be asked for it"
        )
    value = click.prompt(
        f"{what} (postgresql://user:password@host:5432/db, hidden)", hide_input=True
    )
    url = str(value).strip()
    if not url.startswith(SCHEMES):
        raise click.UsageError(f"{option}: it must start with postgres:// or postgresql://")
    return url


def _url_without_password_on_argv(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    if value not in (None, STDIN) and typed_on_command_line(ctx, param):
        refuse_password_on_argv(param.opts[0], str(value), str(param.envvar))
    return url_value(ctx, param, value)


def url_option[F: Callable[..., Any]](*names: str, envvar: str, help_text: str) -> Callable[[F], F]:
    """A `--…-url` option: the value (without a password), `envvar`, stdin (`-`), or None."""
    return click.option(
        *names,
        metavar="URL|-",
        envvar=envvar,
        show_envvar=True,
        callback=_url_without_password_on_argv,
        help=f"{help_text} `-` reads it from standard input.",
    )


TARGET_URL_ENV = "PGBACKUPS_TARGET_URL"


def _target(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from pgbackups.postgres.restore import Target

    url = _url_without_password_on_argv(ctx, param, value)
    if url is None:
        return None
    try:
        return Target.parse(url)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None


def target_url_option[F: Callable[..., Any]](help_text: str) -> Callable[[F], F]:
    """`--target-url` of the restores: a `Target` (without a password on the command line),
    from the value, PGBACKUPS_TARGET_URL or stdin (`-`); None when not given."""
    return click.option(
        "--target-url",
        "target",
        metavar="URL|-",
        envvar=TARGET_URL_ENV,
        show_envvar=True,
        callback=_target,
        help=help_text,
    )
