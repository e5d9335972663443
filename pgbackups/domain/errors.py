"""Domain errors: a machine-readable code and a message for people; no HTTP here
(`pgbackups.api.errors` maps each kind to its status)."""

from __future__ import annotations


class PgBackupsError(Exception):
    """Base class: `code` is machine-readable, the message is for people."""

    code = "error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(PgBackupsError):
    code = "invalid_input"


class NotFound(PgBackupsError):
    code = "not_found"


class Conflict(PgBackupsError):
    code = "conflict"


class DatabaseNotFound(NotFound):
    code = "database_not_found"


class BackupNotFound(NotFound):
    code = "backup_not_found"


class DatabaseExists(Conflict):
    code = "database_exists"


class BackupInProgress(Conflict):
    code = "backup_in_progress"

    def __init__(self, database: str, backup_id: str) -> None:
        super().__init__(
            f"a backup of {database} is already scheduled or running: {backup_id}",
            backup_id=backup_id,
        )
        self.backup_id = backup_id


class BackupNotDone(Conflict):
    code = "backup_not_done"


class BackupLocked(Conflict):
    """S3's Object Lock, or a legal hold, keeps the backup until a date or a release."""

    code = "backup_locked"

    def __init__(self, message: str, locked_until: str | None, legal_hold: bool) -> None:
        super().__init__(message, locked_until=locked_until, legal_hold=legal_hold)


class PeriodicBackupExists(Conflict):
    """The dispatcher already created today's periodic backup of this database."""

    code = "periodic_backup_exists"


class BackupNotStarted(PgBackupsError):
    """The runner could not start the backup: a temporary fault on our side.

    Nothing conflicts with the request, and trying again later is the right
    reaction; the record is already finished as `error`, so the database is not
    left locked.
    """

    code = "backup_not_started"


class ConnectionFailed(InvalidInput):
    """A connection URL was refused; the message never contains the URL."""

    code = "connection_failed"


class ConnectionParameterNotAllowed(InvalidInput):
    """A connection URL sets a libpq parameter that would reach our own files or
    sockets (passfile, sslcert, service, a socket directory...); `parameter` names it."""

    code = "connection_parameter_not_allowed"


# Continuous backups (point-in-time recovery).


class ReplicationRefused(InvalidInput):
    """The server does not allow what continuous backups need; the message names it."""

    code = "replication_refused"


class ServerUnreachable(ReplicationRefused):
    """No answer at the URL's host and port (libpq's reason, never the URL)."""

    code = "server_unreachable"


class AuthenticationFailed(ReplicationRefused):
    code = "authentication_failed"


class ReplicationNotPermitted(ReplicationRefused):
    """The role lacks the REPLICATION attribute."""

    code = "replication_not_permitted"


class ReplicationRefusedByPgHba(ReplicationRefused):
    """pg_hba.conf has no `replication` line that lets the role in from here."""

    code = "replication_refused_by_pg_hba"


class WalLevelTooLow(ReplicationRefused):
    code = "wal_level_too_low"


class NoFreeWalSender(ReplicationRefused):
    """max_wal_senders is reached (or 0)."""

    code = "no_free_wal_sender"


class NoFreeReplicationSlot(ReplicationRefused):
    """max_replication_slots is reached (or 0)."""

    code = "no_free_replication_slot"


class OutsideRecoveryWindow(InvalidInput):
    """No recoverable range holds the time; `before` and `after` name the nearest
    recoverable times on each side (RFC 3339, or None)."""

    code = "outside_recovery_window"


class RecoveryWindowMoved(Conflict):
    """A restore's next page no longer continues the base backup its first page chose."""

    code = "recovery_window_moved"


class CaptureRunning(Conflict):
    code = "capture_running"


class PitrDisabled(Conflict):
    """Continuous backups are off and no stored history is left to restore from."""

    code = "pitr_disabled"


class ChainEnded(Conflict):
    """The chain a base backup was asked for ended (broken, disabled) before it ran."""

    code = "chain_ended"


class WalMissing(Conflict):
    """A restore plan would skip WAL: the catalog has no record of a file it needs (lost,
    or archived before WAL files were recorded); `segment` names the first one."""

    code = "wal_missing"


class RestoreNotFound(NotFound):
    code = "restore_not_found"


class RestoreInProgress(Conflict):
    """One active restore per target database."""

    code = "restore_in_progress"

    def __init__(self, target: str, restore_id: str | None) -> None:
        super().__init__(
            f"a restore into {target} is already scheduled or running"
            + (f": {restore_id}" if restore_id else ""),
            restore_id=restore_id,
        )


class ConfirmationRequired(Conflict):
    """A restore into the backed-up database itself needs its name as `confirm`."""

    code = "confirmation_required"


class NotSupported(InvalidInput):
    """A request the stack does not handle (yet), valid as it is."""

    code = "not_supported"


class VerificationNotFound(NotFound):
    code = "verification_not_found"


class VerificationInProgress(Conflict):
    """One active restore drill per database."""

    code = "verification_in_progress"

    def __init__(self, database: str, verification_id: str | None) -> None:
        super().__init__(
            f"a drill of {database} is already scheduled or running"
            + (f": {verification_id}" if verification_id else ""),
            verification_id=verification_id,
        )
