"""Which API the CLI talks to, with which token, about which database.

Each setting comes from the first of these that has it:

1. flags: `--api-url`, `--token`, `--database/-d` (before the command or on it);
2. environment: PGBACKUPS_API_URL, PGBACKUPS_TOKEN, PGBACKUPS_DATABASE;
3. the config file `pgbackups login` writes (PGBACKUPS_CONFIG, else
   $XDG_CONFIG_HOME/pgbackups/config.json, else ~/.config/pgbackups/config.json),
   JSON or TOML (by the `.toml` suffix);
4. the local stack's `./.pgbackups-local/stack.json` in the current folder.

A token is only ever sent to the API it was saved with: the token of a file
(3 or 4) is used only when the API URL chosen is that file's own, so pointing
PGBACKUPS_API_URL elsewhere never leaks a saved token to another server.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgbackups_cli.stack_file import (
    DEFAULT_STATE_DIR,
    StackFileError,
    read_stack_file,
    stack_file_path,
)

API_URL_ENV = "PGBACKUPS_API_URL"
TOKEN_ENV = "PGBACKUPS_TOKEN"  # noqa: S105 (a variable name)
DATABASE_ENV = "PGBACKUPS_DATABASE"
CONFIG_ENV = "PGBACKUPS_CONFIG"
STACK_FILE = stack_file_path()  # relative to the current folder


class ConfigError(Exception):
    """Nothing (or something unreadable) configured; the message says what to do."""


@dataclass(frozen=True)
class Flags:
    """What the command line said; None where it said nothing."""

    api_url: str | None = None
    token: str | None = None
    database: str | None = None


@dataclass(frozen=True)
class Source:
    """One place settings can come from."""

    name: str  # for messages: "config file /…/config.json", "local stack …/stack.json"
    api_url: str | None = None
    token: str | None = None
    database: str | None = None
    bound: bool = False  # a file: its token belongs to its own API URL only
    local_stack: bool = False
    # Where the URL and the token came from, when more precise than `name` (flags, env).
    api_url_name: str | None = None
    token_name: str | None = None


@dataclass(frozen=True)
class ApiConfig:
    api_url: str
    token: str
    database: str | None
    api_url_from: str
    token_from: str
    local_stack: bool = False  # the API URL is the local stack's


def config_path(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """Where `pgbackups login` writes and every command reads the saved credentials."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME")
    root = Path(base) if base else (home or Path.home()) / ".config"
    return root / "pgbackups" / "config.json"


def normalized_api_url(url: str | None) -> str | None:
    """The API's base URL: blanks, a trailing / and a pasted /v1 taken off."""
    if not url or not url.strip():
        return None
    return url.strip().rstrip("/").removesuffix("/v1").rstrip("/") or None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def read_config_file(path: Path) -> dict[str, Any] | None:
    """The file's settings, None if there is no file; ConfigError if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"cannot read {path}: expected an object with api_url and token")
    return data


def sources(
    flags: Flags,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> list[Source]:
    """Every place with settings, first found wins."""
    env = os.environ if environ is None else environ
    found = [
        Source(
            "command-line flags",
            flags.api_url,
            flags.token,
            flags.database,
            api_url_name="--api-url",
            token_name="--token",  # noqa: S106 (a label, not a secret)
        ),
        Source(
            "environment (PGBACKUPS_*)",
            env.get(API_URL_ENV),
            env.get(TOKEN_ENV),
            env.get(DATABASE_ENV),
            api_url_name=API_URL_ENV,
            token_name=TOKEN_ENV,
        ),
    ]
    path = config_path(env, home)
    saved = read_config_file(path)
    if saved is not None:
        found.append(
            Source(
                f"config file {path}",
                _text(saved.get("api_url")),
                _text(saved.get("token")),
                _text(saved.get("database")),
                bound=True,
            )
        )
    stack_dir = (cwd or Path.cwd()) / DEFAULT_STATE_DIR
    stack_path = stack_file_path(stack_dir)
    try:
        stack: dict[str, Any] | None = read_stack_file(stack_dir)
    except StackFileError:  # none, or left over: said when nothing else is configured
        stack = None
    if stack is not None:
        found.append(
            Source(
                f"local stack {stack_path}",
                _text(stack.get("api_url")),
                _text(stack.get("token")),
                bound=True,
                local_stack=True,
            )
        )
    return found


def resolve(
    flags: Flags,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> ApiConfig:
    """The API, token and database to use; ConfigError saying what to do if none."""
    found = sources(flags, environ, cwd, home)
    url_source = next((s for s in found if normalized_api_url(s.api_url)), None)
    if url_source is None:
        stale = (cwd or Path.cwd()) / STACK_FILE
        left_over = (
            f" ({STACK_FILE} is left over from a local stack that is no longer running.)"
            if stale.exists()
            else ""
        )
        raise ConfigError(
            "No API configured. Run `pgbackups login --api-url URL --token TOKEN`, "
            "or start the local stack in this folder with `pgbackups local` "
            f"(or set {API_URL_ENV} and {TOKEN_ENV}).{left_over}"
        )
    api_url = normalized_api_url(url_source.api_url)
    assert api_url is not None

    def usable(source: Source) -> bool:
        return not source.bound or normalized_api_url(source.api_url) in (None, api_url)

    token_source = next((s for s in found if _text(s.token) and usable(s)), None)
    if token_source is None:
        raise ConfigError(
            f"No token for the API at {api_url}: pass --token or set {TOKEN_ENV} "
            "(or save both with `pgbackups login --api-url URL --token TOKEN`)."
        )
    database_source = next((s for s in found if _text(s.database) and usable(s)), None)
    return ApiConfig(
        api_url=api_url,
        token=str(_text(token_source.token)),
        database=_text(database_source.database) if database_source else None,
        api_url_from=url_source.api_url_name or url_source.name,
        token_from=token_source.token_name or token_source.name,
        # The URL is this folder's local stack's, wherever it was configured.
        local_stack=any(s.local_stack and normalized_api_url(s.api_url) == api_url for s in found),
    )


def save_config(path: Path, api_url: str, token: str, database: str | None = None) -> None:
    """Write the credentials, readable by this user only (0600), atomically."""
    values = {"api_url": api_url, "token": token}
    if database:
        values["database"] = database
    if path.suffix == ".toml":
        # JSON strings are valid TOML basic strings.
        text = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
    else:
        text = json.dumps(values, indent=2) + "\n"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(staging, 0o600)  # whatever the umask said
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def remove_config(path: Path) -> bool:
    """Delete the saved login; whether there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def is_private(path: Path) -> bool:
    """Whether only its owner can read the file (False if others can)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return True
    return not mode & (stat.S_IRWXG | stat.S_IRWXO)
