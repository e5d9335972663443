"""Taking one backup: from `scheduled` to `done` or `error`, honestly.

`run_backup` is what the backup function does with one async invocation. It
is idempotent: only the invocation that moves the record from `scheduled` to
`running` does any work, so Lambda's retries of a finished or running backup
change nothing. Every failure ends in an `error` record with a readable
reason, no object in S3 and the database's lock released.
"""

from __future__ import annotations

import time

from aws_lambda_powertools import Logger

from pgbackups.connections import ServerFacts, probe
from pgbackups.dump import DumpFailed, dump_command, stream_dump_to_s3
from pgbackups.errors import PgBackupsError
from pgbackups.models import BackupRecord, BackupSource
from pgbackups.pruning import prune_database
from pgbackups.secrets import ConnectionInfo
from pgbackups.services import Services

logger = Logger(child=True)

# Time kept back from the Lambda deadline to abort the upload and record the error.
DEADLINE_MARGIN_SECONDS = 30.0


def choose_source(info: ConnectionInfo) -> tuple[BackupSource, str, ServerFacts]:
    """The replica when one is registered and accepts connections, else the primary."""
    if info.replica_url:
        try:
            return "replica", info.replica_url, probe(info.replica_url, timeout=5)
        except PgBackupsError as error:
            logger.warning(
                "replica unreachable, backing up the primary", extra={"reason": error.message}
            )
    return "primary", info.url, probe(info.url)


def run_backup(
    services: Services, database: str, backup_id: str, *, seconds_left: float
) -> BackupRecord | None:
    """Take the backup; None when this invocation has nothing to do (a retry).

    `seconds_left` is the time until the invocation's deadline: the dump stops
    with `error: timed out` early enough to abort and record it.
    """
    started = time.monotonic()
    record = services.catalog.start_backup(database, backup_id, services.clock())
    if record is None:
        logger.info(
            "backup is not scheduled any more: nothing to do", extra={"backup_id": backup_id}
        )
        return None
    logger.append_keys(database=database, backup_id=backup_id)
    try:
        finished = _dump(services, record, seconds_left - DEADLINE_MARGIN_SECONDS, started)
    except DumpFailed as error:
        finished = _failed(services, record, str(error))
    except PgBackupsError as error:
        finished = _failed(services, record, error.message)
    except Exception as error:
        logger.exception("backup failed unexpectedly")
        finished = _failed(services, record, f"internal error ({type(error).__name__})")

    if not services.catalog.finish_backup(finished):
        # The dispatcher's reaper gave up on this backup meanwhile: its record says
        # `error`, so no object may remain.
        logger.warning("backup was finished elsewhere; discarding this result")
        services.archives.delete(finished.object_key)
        return services.catalog.get_backup(database, backup_id)
    services.events.publish(finished)
    if finished.status == "done":
        _apply_retention(services, database)
    return finished


def _dump(
    services: Services, record: BackupRecord, seconds_left: float, started: float
) -> BackupRecord:
    database = services.catalog.get_database(record.database, include_removed=True)
    source, url, facts = choose_source(services.secrets.get(record.database))
    logger.info("dumping", extra={"source": source, "compression": database.compression})
    argv, env = dump_command(services.tools, url, database.compression)
    stored = stream_dump_to_s3(
        services.archives,
        record.object_key,
        argv,
        env,
        seconds_left=seconds_left - (time.monotonic() - started),
        launcher=services.launcher,
    )
    return record.model_copy(
        update={
            "status": "done",
            "finished_at": services.clock(),
            "size": stored.size,
            "sha256": stored.sha256,
            "compression": database.compression,
            "source": source,
            "server_version": facts.server_version,
            "database_size": facts.database_size,
            "pg_dump_version": services.tools.version(),
        }
    )


def _failed(services: Services, record: BackupRecord, reason: str) -> BackupRecord:
    logger.warning("backup failed", extra={"reason": reason})
    # The upload was aborted before completion; delete anyway in case a failure
    # came after it (e.g. reading pg_dump's version).
    services.archives.delete(record.object_key)
    return record.model_copy(
        update={"status": "error", "finished_at": services.clock(), "error": reason}
    )


def _apply_retention(services: Services, database: str) -> None:
    """Prune after a success; a pruning failure never fails the backup (the sweep retries)."""
    try:
        record = services.catalog.get_database(database, include_removed=True)
        deleted = prune_database(services, record, services.clock())
        if deleted:
            logger.info("retention pruned backups", extra={"deleted": [r.id for r in deleted]})
    except Exception:
        logger.exception("retention failed after the backup; the hourly sweep will retry")
