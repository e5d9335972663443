"""The PostgreSQL client tools (the pgtools layer, /opt on Lambda): where they are, how to run them."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# A path that can never exist (a file is not a directory): libpq reads nothing there.
NOWHERE = "/dev/null/pgbackups-none"


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
