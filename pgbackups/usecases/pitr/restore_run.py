"""A restore to a point in time, on the Fargate runner: the cluster recovered in the task's
storage with the shipped server binaries of the source's major, then its database moved
into the target (pg_dump as the cluster's superuser into pg_restore as the target's
user), so the source's replication role needs no rights on its tables.

`pgbackups.usecases.restores.run_restore` owns the run's lifecycle (start, the secret,
the end, done or failed, events); this is its point-in-time step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools import Logger

from pgbackups.domain.restores import RestoreRecord
from pgbackups.postgres.cluster import ClusterFailed, reachable_storage
from pgbackups.postgres.recovery import move_database
from pgbackups.postgres.restore import RestoreFailed, RestoreOutcome, RestoreProgress, Target
from pgbackups.postgres.servers import ServerNotFound, server_install
from pgbackups.services import Services
from pgbackups.usecases.pitr.recover import recovered_cluster, source_major

logger = Logger(child=True)


def restore_point_in_time(
    services: Services,
    record: RestoreRecord,
    target: Target,
    done: RestoreProgress,
    seconds_left: float,
    *,
    mark_started: Callable[[], object],
    on_wal: Callable[[int, int], object],
    on_entries: Callable[[int], object],
) -> RestoreOutcome:
    """Recover `record.target_time` (None: latest) and move it into `target`: `done`
    holds the entries restored, and `mark_started` was called before the target was
    touched; `on_wal` sees the WAL files fetched of the plan's, then `on_entries`
    pg_restore's entries done. RestoreFailed with the reason (recovery's, or the move's)."""
    deadline = time.monotonic() + seconds_left
    try:
        major = source_major(services, record.database, record.target_time)
        install = server_install(major, services.settings.server_dirs)
    except ServerNotFound as error:
        raise RestoreFailed(str(error)) from None
    try:
        work_dir = reachable_storage()
    except ClusterFailed as error:
        raise RestoreFailed(str(error)) from None
    try:
        with recovered_cluster(
            services, record.database, record.target_time, work_dir,
            install=install, deadline=deadline, on_wal=on_wal,
        ) as recovered:  # fmt: skip
            logger.info(
                "cluster recovered",
                extra={"restore_id": record.id, "wal_files": recovered.wal_files},
            )
            mark_started()
            outcome = move_database(
                services.tools, recovered.cluster, recovered.superuser, recovered.database_name,
                target, tables=record.tables, schemas=record.schemas, clean=record.clean,
                on_progress=on_entries, done=done,
                timeout=max(deadline - time.monotonic(), 1.0),
            )  # fmt: skip
    except ClusterFailed as error:
        raise RestoreFailed(f"recovery failed: {error}") from None
    return outcome
