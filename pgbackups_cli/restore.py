"""`backups-restore`'s pg_restore: the shipped `pgbackups.postgres.restore`, which the
stack's restores run too (one way to build the command, feed the archive, count the
entries and sum up the errors)."""

from pgbackups.postgres.restore import (
    CONNECT_TIMEOUT_SECONDS,
    Feed,
    RestoreFailed,
    RestoreOutcome,
    RestoreProgress,
    Target,
    TargetServer,
    _only_transaction_timeout,
    check_archive_file,
    check_target,
    count_entries,
    find_pgtools,
    restore_command,
    run_pg_restore,
    summarize_errors,
)

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "Feed",
    "RestoreFailed",
    "RestoreOutcome",
    "RestoreProgress",
    "Target",
    "TargetServer",
    "_only_transaction_timeout",
    "check_archive_file",
    "check_target",
    "count_entries",
    "find_pgtools",
    "restore_command",
    "run_pg_restore",
    "summarize_errors",
]
