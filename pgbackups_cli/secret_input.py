"""Connection URLs carry passwords: they may come from anywhere but the command line.

Each URL option also reads an environment variable, `-` reads the URL from
standard input (one line), and with nothing given on a terminal the URL is
asked for with hidden input, so the password need not sit in the CLI's argv
(readable by every user of the machine through `ps` or /proc) or in the
shell's history.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

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


def url_option[F: Callable[..., Any]](*names: str, envvar: str, help_text: str) -> Callable[[F], F]:
    return click.option(
        *names,
        metavar="URL|-",
        envvar=envvar,
        show_envvar=True,
        callback=url_value,
        help=f"{help_text} `-` reads it from standard input.",
    )
