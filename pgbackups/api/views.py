"""How the API shows the domain's records: display fields are computed here."""

from __future__ import annotations

from datetime import datetime

from pgbackups.api.schemas import ArchiveLink, BackupSummary, BackupView, Database, ScheduleView
from pgbackups.api.schemas.pitr import (
    BaseBackupRunView,
    BaseBackupView,
    PitrBreakView,
    PitrView,
    RecoverableRangeView,
)
from pgbackups.api.schemas.restores import RestoreProgressView, RestoreView
from pgbackups.api.schemas.verifications import (
    CheckView,
    VerificationSettingsView,
    VerificationStatusView,
    VerificationView,
)
from pgbackups.domain.models import BackupRecord, DatabaseRecord, Health, KeptAs, Schedule
from pgbackups.domain.pitr import BaseBackup, BaseBackupRun
from pgbackups.domain.restores import RestoreRecord
from pgbackups.domain.schedule import UnknownTimezone, next_run_at
from pgbackups.domain.verifications import (
    VerificationRecord,
    VerificationState,
    next_verification_at,
)
from pgbackups.postgres.lsn import format_lsn
from pgbackups.usecases.downloads import Download
from pgbackups.usecases.pitr import PitrOverview


def schedule_view(schedule: Schedule, now: datetime) -> ScheduleView:
    try:
        return ScheduleView(**schedule.model_dump(), next_run_at=next_run_at(schedule, now))
    except UnknownTimezone as error:  # this database's backups stop; the others' go on
        return ScheduleView(**schedule.model_dump(), next_run_at=None, error=str(error))


def database_view(record: DatabaseRecord, last: BackupRecord | None, now: datetime) -> Database:
    return Database(
        name=record.name,
        schedule=schedule_view(record.schedule, now),
        retention=record.retention,
        compression=record.compression,
        runner=record.runner,
        has_replica=record.has_replica,
        created_at=record.created_at,
        alerting=record.alerting,
        verification=VerificationSettingsView(
            **record.verification.model_dump(exclude={"enabled_since", "smoke_queries"}),
            smoke_queries=record.verification.smoke_queries,
        ),
        verification_status=verification_status_view(record, now),
        health=record.health or Health(),
        last_backup=(
            BackupSummary.model_validate(
                last.model_dump(include={"id", "status", "created_at", "size"})
            )
            if last is not None
            else None
        ),
    )


def backup_views(records: list[BackupRecord], kept: dict[str, KeptAs]) -> list[BackupView]:
    """The records with why retention keeps each (null for those it does not keep)."""
    return [BackupView(**dict(record), kept_as=kept.get(record.id)) for record in records]


def archive_link(download: Download) -> ArchiveLink:
    return ArchiveLink(
        download_url=download.url,
        expires_at=download.expires_at,
        filename=download.filename,
        size=download.size,
        sha256=download.sha256,
    )


def pitr_view(overview: PitrOverview) -> PitrView:
    state, run = overview.state, overview.base_backup_run
    broken = state.status == "broken"
    return PitrView(
        enabled=state.enabled,
        status=state.status,
        broken_reason=state.broken_reason if broken else None,
        broken_since=overview.broken_since,
        base_backup_every_days=state.base_backup_every_days,
        window_days=state.window_days,
        recoverable_ranges=[
            RecoverableRangeView.model_validate(
                {"from": r.start, "to": r.end, "base_backup_id": r.base.id}
            )
            for r in overview.ranges
        ],
        earliest_recoverable_at=overview.window.earliest,
        latest_recoverable_at=overview.window.latest,
        breaks=[
            PitrBreakView(
                at=b.at,
                reason=b.reason,
                chain_id=b.chain_id,
                recovered_at=b.recovered_at,
                gap_seconds=b.gap_seconds,
            )
            for b in overview.breaks
        ],
        lag_seconds=overview.lag_seconds,
        last_archived_at=overview.last_archived_at,
        last_archived_wal=overview.last_archived_wal,
        history_kept_until=overview.history_kept_until,
        base_backups=[base_backup_view(b) for b in overview.base_backups],
        base_backup_in_progress=(
            base_backup_run_view(run) if run is not None and run.status != "error" else None
        ),
        last_base_backup_error=run.error if run is not None and run.status == "error" else None,
    )


def base_backup_view(base: BaseBackup) -> BaseBackupView:
    return BaseBackupView(
        id=base.id,
        started_at=base.started_at,
        finished_at=base.finished_at,
        start_lsn=format_lsn(base.start_lsn),
        end_lsn=format_lsn(base.end_lsn),
        timeline=base.timeline,
        size=base.size,
        sha256=base.sha256,
        runner=base.runner,
    )


def base_backup_run_view(run: BaseBackupRun) -> BaseBackupRunView:
    return BaseBackupRunView(
        id=run.id,
        status="running" if run.status == "running" else "scheduled",
        requested_at=run.created_at,
        started_at=run.started_at,
        runner=run.runner,
        deadline_at=run.deadline_at,
    )


def restore_view(record: RestoreRecord) -> RestoreView:
    duration = None
    if record.started_at is not None and record.finished_at is not None:
        duration = round((record.finished_at - record.started_at).total_seconds(), 3)
    return RestoreView(
        id=record.id,
        kind=record.kind,
        backup_id=record.backup_id,
        target_time=record.target_time,
        target=record.target,
        tables=record.tables,
        schemas=record.schemas,
        status=record.status,
        runner=record.runner,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        duration_seconds=duration,
        progress=RestoreProgressView(
            restored=record.progress.restored, total=record.progress.total
        ),
        warnings=record.warnings,
        error=record.error,
    )


def verification_status_view(record: DatabaseRecord, now: datetime) -> VerificationStatusView:
    state = record.verification_state or VerificationState()
    try:
        next_at = next_verification_at(record.verification, record.schedule, state.last_at, now)
    except UnknownTimezone:
        next_at = None
    return VerificationStatusView(
        last_id=state.last_id,
        last_status=state.last_status,
        last_at=state.last_at,
        next_at=next_at,
        restore_seconds=state.restore_seconds,
    )


def verification_view(record: VerificationRecord) -> VerificationView:
    return VerificationView(
        **record.model_dump(exclude={"checks", "deadline_at"}),
        checks=[CheckView(**check.model_dump()) for check in record.checks],
    )
