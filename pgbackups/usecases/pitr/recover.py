"""A cluster recovered to a point in time on a runner, from the bucket: what a
point-in-time restore moves into its target, and what a point-in-time drill checks.

The restore plan (`restore_plan`) names the base backup and the WAL by key with the
digests recorded when they were archived; `pgbackups.postgres.recovery` fetches,
checks and replays them, as the CLI's `pitr-restore` does from presigned URLs.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pgbackups.postgres.cluster import (
    ClusterFailed,
    RecoveredCluster,
    check_reachable,
    give_to,
    private_folder,
    server_user,
)
from pgbackups.postgres.recovery import (
    Readable,
    RecoverySource,
    StoredFile,
    database_owner,
    reached_at,
    recover,
)
from pgbackups.services import Services
from pgbackups.usecases.pitr.restore_plan import RestorePlan, plan_restore

# The whole plan at once: on a runner nothing expires while the WAL downloads.
WHOLE_PLAN = 10**9


@dataclass(frozen=True)
class Recovered:
    """A recovered, promoted cluster, running."""

    cluster: RecoveredCluster
    database_name: str  # the source's database, inside the cluster
    owner: str  # the role that owns it
    superuser: str  # the cluster's bootstrap superuser (reads every object)
    reached: datetime | None  # the commit time replay reached (None: no commit replayed)
    wal_files: int  # WAL files replayed


def recovery_source(plan: RestorePlan) -> RecoverySource:
    """What `plan` (a whole one) replays, by bucket key."""
    chain, base = plan.point.chain, plan.point.base
    return RecoverySource(
        server_major=chain.server_major,
        source_database=chain.source_database,
        source_user=chain.source_user,
        target_time=plan.point.target,
        base=StoredFile(f"base backup {base.id}", base.object_key, base.sha256, base.size),
        wal_total=plan.wal_total,
        wal=[(f.name, StoredFile(f"WAL file {f.name}", f.key, f.sha256, f.size)) for f in plan.wal],
    )


def source_major(services: Services, database: str, target_time: datetime | None) -> int:
    """The major version of the server whose backups restore `target_time`; refusals as
    the restore plan's (OutsideRecoveryWindow, WalMissing, PitrDisabled)."""
    return plan_restore(services, database, target_time, limit=1).point.chain.server_major


@contextlib.contextmanager
def recovered_cluster(
    services: Services,
    database: str,
    target_time: datetime | None,
    work_dir: Path,
    *,
    install: Path,
    deadline: float,
    on_wal: Callable[[int, int], object] | None = None,
) -> Iterator[Recovered]:
    """The base backup and WAL that restore `database` to `target_time` (None: latest)
    downloaded from the bucket into `work_dir` (each checked against its recorded
    SHA-256), recovered with the server binaries at `install` and promoted; yielded
    running, then stopped and every file removed, whatever happened. `deadline` is on
    the monotonic clock; `on_wal(fetched, total)` follows the WAL's download.

    ClusterFailed with the reason (a WAL file missing from the bucket is named), or the
    plan's refusals (PgBackupsError)."""
    plan = plan_restore(services, database, target_time, limit=WHOLE_PLAN)
    source = recovery_source(plan)
    user = server_user()
    scratch = Path(tempfile.mkdtemp(prefix="pgbackups-recovery-", dir=work_dir))
    cluster: RecoveredCluster | None = None
    try:
        check_reachable(scratch, user)  # the server's user must enter work_dir
        give_to(user, scratch)
        data_dir = private_folder(scratch / "data", user)
        fetched = 0

        def advance() -> None:
            nonlocal fetched
            fetched += 1
            if on_wal is not None:
                on_wal(fetched, source.wal_total)

        cluster = recover(
            source, _bucket_opener(services), data_dir, scratch, install=install, user=user,
            advance=advance, deadline=deadline,
        )  # fmt: skip
        superuser = cluster.bootstrap_user(source.source_user)
        yield Recovered(
            cluster=cluster,
            database_name=source.source_database,
            owner=database_owner(cluster, superuser, source.source_database),
            superuser=superuser,
            reached=reached_at(cluster),
            wal_files=fetched,
        )
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _bucket_opener(services: Services) -> Callable[[StoredFile], Readable]:
    def open_file(file: StoredFile) -> Readable:
        try:
            body: Readable = services.archives.open_stream(file.location)
        except Exception as error:  # the bucket's answer, e.g. NoSuchKey: said, not hidden
            raise ClusterFailed(f"{file.what} could not be read from the bucket: {error}") from None
        return body

    return open_file
