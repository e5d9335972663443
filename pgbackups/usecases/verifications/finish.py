"""A restore drill finished: its record written and the database's lock freed, the
drilled backup's `verified_at` and `verification` set, an event published."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from pgbackups.domain.verifications import VerificationRecord, VerificationState
from pgbackups.services import Services

logger = Logger(child=True)


def record_finished(
    services: Services,
    record: VerificationRecord,
    state: VerificationState,
    *,
    expected_status: str,
) -> bool:
    """Record the finished drill and free the database's lock; then mark its backup and
    announce it. False when it was finished by someone else meanwhile."""
    summary = state.model_copy(
        update={
            "last_id": record.id,
            "last_kind": record.kind,
            "last_status": record.status,
            "last_at": record.created_at,
            "last_passed_at": record.finished_at if record.passed else state.last_passed_at,
            "restore_seconds": (record.restore_seconds if record.passed else state.restore_seconds),
        }
    )
    if not services.verifications.finish_verification(
        record, summary, expected_status=expected_status
    ):
        return False
    if record.kind == "backup" and record.backup_id is not None and record.started_at:
        try:
            services.verifications.mark_backup(
                record.database, record.backup_id, record.finished_at or services.clock(),
                "passed" if record.passed else "failed",
            )  # fmt: skip
        except Exception:
            logger.exception(
                "could not mark the drilled backup", extra={"verification_id": record.id}
            )
    try:
        services.events.publish_verification(record)
    except Exception:
        logger.exception(
            "could not publish the drill's event", extra={"verification_id": record.id}
        )
    return True
