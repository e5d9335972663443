"""PostgreSQL refuses to run as root: the user a server started by this tool runs as.

As root, a server (the local stack's embedded one, a cluster recovered by
`pitr-restore`) runs as `postgres`, else `nobody`, through util-linux's `runuser`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil

from pgbackups_cli.output import Failure


class NoServerUser(Failure):
    """Running as root with no user to hand the server to."""


def server_user() -> str | None:
    """The user to run a PostgreSQL server as, or None to run it as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise NoServerUser("running as root and neither a 'postgres' nor a 'nobody' user exists")


def as_user(user: str | None, command: list[str]) -> list[str]:
    """`command`, run as `user` when there is one."""
    if user is None:
        return command
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        raise NoServerUser("running as root needs `runuser` (util-linux) to start PostgreSQL")
    return [runuser, "-u", user, "--", *command]
