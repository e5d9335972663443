"""Where the CLI finds its API, token and database: flags > env > config file > stack.json."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from pgbackups_cli.config import (
    ConfigError,
    Flags,
    config_path,
    normalized_api_url,
    read_config_file,
    resolve,
    save_config,
)

pytestmark = pytest.mark.unit

FILE_URL = "https://saved.example.com"
STACK_URL = "http://127.0.0.1:3000"
ENV_URL = "https://env.example.com"
FLAG_URL = "https://flag.example.com"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    (tmp_path / "project").mkdir()
    return tmp_path / "project"


def write_stack(cwd: Path, url: str = STACK_URL, token: str = "stack-token") -> Path:  # noqa: S107
    path = cwd / ".pgbackups-local" / "stack.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"api_url": url, "token": token, "pid": 1, "region": "local"}))
    return path


def write_saved(home: Path, **values: str) -> Path:
    path = home / ".config" / "pgbackups" / "config.json"
    save_config(path, values.pop("api_url", FILE_URL), values.pop("token", "file-token"), **values)
    return path


def test_nothing_configured_says_to_log_in_or_start_the_local_stack(cwd: Path, home: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        resolve(Flags(), {}, cwd, home)
    message = str(missing.value)
    assert "pgbackups login --api-url URL --token TOKEN" in message
    assert "pgbackups local" in message


def test_the_local_stack_in_the_current_folder(cwd: Path, home: Path) -> None:
    path = write_stack(cwd)
    config = resolve(Flags(), {}, cwd, home)
    assert (config.api_url, config.token) == (STACK_URL, "stack-token")
    assert config.local_stack
    assert config.api_url_from == f"local stack {path}"


def test_the_config_file_beats_the_local_stack(cwd: Path, home: Path) -> None:
    write_stack(cwd)
    path = write_saved(home)
    config = resolve(Flags(), {}, cwd, home)
    assert (config.api_url, config.token) == (FILE_URL, "file-token")
    assert config.token_from == f"config file {path}"
    assert not config.local_stack


def test_the_environment_beats_the_config_file(cwd: Path, home: Path) -> None:
    write_stack(cwd)
    write_saved(home)
    env = {"PGBACKUPS_API_URL": ENV_URL, "PGBACKUPS_TOKEN": "env-token"}
    config = resolve(Flags(), env, cwd, home)
    assert (config.api_url, config.token) == (ENV_URL, "env-token")
    assert config.token_from == "PGBACKUPS_TOKEN"


def test_flags_beat_the_environment(cwd: Path, home: Path) -> None:
    write_stack(cwd)
    write_saved(home)
    env = {"PGBACKUPS_API_URL": ENV_URL, "PGBACKUPS_TOKEN": "env-token"}
    config = resolve(Flags(api_url=FLAG_URL + "/", token="flag-token"), env, cwd, home)
    assert (config.api_url, config.token) == (FLAG_URL, "flag-token")
    assert config.api_url_from == "--api-url"


def test_each_setting_is_taken_where_first_found(cwd: Path, home: Path) -> None:
    write_saved(home)
    config = resolve(Flags(token="flag-token"), {}, cwd, home)
    assert (config.api_url, config.token) == (FILE_URL, "flag-token")


def test_a_saved_token_is_never_sent_to_another_api(cwd: Path, home: Path) -> None:
    write_saved(home)
    write_stack(cwd)
    with pytest.raises(ConfigError) as missing:
        resolve(Flags(), {"PGBACKUPS_API_URL": ENV_URL}, cwd, home)
    assert f"No token for the API at {ENV_URL}" in str(missing.value)


def test_a_saved_token_goes_with_its_own_api_url(cwd: Path, home: Path) -> None:
    write_saved(home)
    config = resolve(Flags(api_url=FILE_URL + "/"), {}, cwd, home)
    assert config.token == "file-token"


def test_the_stack_token_goes_with_the_stack_url(cwd: Path, home: Path) -> None:
    write_saved(home)
    write_stack(cwd)
    config = resolve(Flags(), {"PGBACKUPS_API_URL": STACK_URL}, cwd, home)
    assert config.token == "stack-token"


def test_database_precedence(cwd: Path, home: Path) -> None:
    write_saved(home, database="from-file")
    assert resolve(Flags(), {}, cwd, home).database == "from-file"
    env = {"PGBACKUPS_DATABASE": "from-env"}
    assert resolve(Flags(), env, cwd, home).database == "from-env"
    assert resolve(Flags(database="from-flag"), env, cwd, home).database == "from-flag"
    write_stack(cwd)
    assert resolve(Flags(api_url=STACK_URL), {}, cwd, home).database is None


def test_config_path_default_xdg_and_override(home: Path, tmp_path: Path) -> None:
    assert config_path({}, home) == home / ".config" / "pgbackups" / "config.json"
    xdg = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert config_path(xdg, home) == tmp_path / "xdg" / "pgbackups" / "config.json"
    override = {**xdg, "PGBACKUPS_CONFIG": str(tmp_path / "mine.toml")}
    assert config_path(override, home) == tmp_path / "mine.toml"


def test_pgbackups_config_names_the_file_to_read(cwd: Path, home: Path, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.json"
    save_config(path, FLAG_URL, "elsewhere-token")
    config = resolve(Flags(), {"PGBACKUPS_CONFIG": str(path)}, cwd, home)
    assert (config.api_url, config.token) == (FLAG_URL, "elsewhere-token")


def test_saved_json_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "pgbackups" / "config.json"
    save_config(path, FILE_URL, "s3cr3t", "shop")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {
        "api_url": FILE_URL,
        "token": "s3cr3t",
        "database": "shop",
    }
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no staging file left


def test_saved_toml_reads_back(cwd: Path, home: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    save_config(path, FILE_URL, 'to"ken\\', "shop")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_config_file(path) == {"api_url": FILE_URL, "token": 'to"ken\\', "database": "shop"}
    config = resolve(Flags(), {"PGBACKUPS_CONFIG": str(path)}, cwd, home)
    assert (config.token, config.database) == ('to"ken\\', "shop")


def test_a_handwritten_toml_file(cwd: Path, home: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"api_url = '{FILE_URL}'\ntoken = 'abc'\n")
    assert resolve(Flags(), {"PGBACKUPS_CONFIG": str(path)}, cwd, home).token == "abc"


def test_an_unreadable_config_file_says_which(cwd: Path, home: Path) -> None:
    path = home / ".config" / "pgbackups" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ConfigError) as broken:
        resolve(Flags(), {}, cwd, home)
    assert f"cannot read {path}" in str(broken.value)


def test_a_stack_file_left_over_by_a_stopped_stack_is_ignored(cwd: Path, home: Path) -> None:
    path = cwd / ".pgbackups-local" / "stack.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"api_url": STACK_URL, "token": "t", "pid": 2**22 + 12345}))
    with pytest.raises(ConfigError) as missing:
        resolve(Flags(), {}, cwd, home)
    assert "left over from a local stack that is no longer running" in str(missing.value)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (
            "https://abc.execute-api.eu-west-1.amazonaws.com",
            "https://abc.execute-api.eu-west-1.amazonaws.com",
        ),
        ("https://abc.example.com/v1", "https://abc.example.com"),
        ("https://abc.example.com/v1/ ", "https://abc.example.com"),
        ("https://abc.example.com/prod/v1", "https://abc.example.com/prod"),
        ("  ", None),
    ],
)
def test_a_pasted_api_url_ending_in_v1_works(given: str, used: str | None) -> None:
    assert normalized_api_url(given) == used
