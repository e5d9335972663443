"""The PostgreSQL server binaries a runner starts a throwaway server with: one folder per
major version (`postgresql-<major>/` holding bin/, lib/, share/), shipped with the
deployment as one layer per major that only the Fargate task unpacks (nothing is
fetched at run time).

Where they are: the task's bootstrap sets PGSERVER_DIRS to its unpacked /opt; outside
AWS (the local stack, the tests) PGBACKUPS_PGSERVER_DIRS lists folders holding
`postgresql-<major>/`, separated by `:` (`make build` writes one per layer under
.aws-sam/build/PgServer<major>Layer).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

# The majors whose server binaries ship with the deployment (one layer each).
SHIPPED_MAJORS = (15, 16, 17, 18)
PGSERVER_DIRS_ENV = "PGBACKUPS_PGSERVER_DIRS"


class ServerNotFound(Exception):
    """No server binaries of that major where they were looked for; the message says why."""


def server_dirs(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The folders to look in: PGSERVER_DIRS (the task) or PGBACKUPS_PGSERVER_DIRS."""
    env = os.environ if environ is None else environ
    listed = env.get("PGSERVER_DIRS") or env.get(PGSERVER_DIRS_ENV) or ""
    return tuple(Path(entry) for entry in listed.split(os.pathsep) if entry)


def server_install(major: int, roots: Sequence[Path]) -> Path:
    """The install (bin/, lib/, share/) of PostgreSQL `major` in one of `roots`."""
    for root in roots:
        install = root / f"postgresql-{major}"
        if (install / "bin" / "postgres").is_file():
            return install.resolve()
    if major not in SHIPPED_MAJORS:
        shipped = ", ".join(str(m) for m in SHIPPED_MAJORS)
        raise ServerNotFound(
            f"PostgreSQL {major} is not one of the majors whose server ships with "
            f"pgbackups ({shipped})"
        )
    where = ", ".join(str(root) for root in roots) or "nowhere (no folder configured)"
    raise ServerNotFound(
        f"the PostgreSQL {major} server binaries were not found (looked in {where}): "
        f"they ship as the PgServer{major}Layer of the deployment; outside AWS, run "
        f"`make build` and set {PGSERVER_DIRS_ENV}"
    )
