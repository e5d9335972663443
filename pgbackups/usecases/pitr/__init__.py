"""Continuous backups, one module per command, along pgBackRest's and WAL-G's seams:

- `settings`: enable, change, disable (and forget, when the database is removed);
- `capture`: archive-push, the heart: one run per database at a time (a lease in
  DynamoDB), streaming the reserved slot's WAL into S3;
- `base_backup`: asked of the backups' runner, taken there (pg_basebackup to S3);
- `retention`: expire base backups and WAL older than the window;
- `restore_plan`: archive-get, what a point-in-time restore downloads;
- `status`: the settings, the recoverable ranges and the breaks between them, the base
  backups, computed once.

The names callers use are re-exported here.
"""

from pgbackups.usecases.pitr.base_backup import (
    BaseBackupResult,
    request_base_backup,
    run_base_backup,
)
from pgbackups.usecases.pitr.capture import (
    CaptureReport,
    capture,
    pitr_databases,
    start_captures,
)
from pgbackups.usecases.pitr.restore_plan import (
    RESTORE_PAGE_SIZE,
    RestorePlan,
    WalFile,
    plan_restore,
    restore_links,
)
from pgbackups.usecases.pitr.retention import apply_pitr_retention
from pgbackups.usecases.pitr.settings import (
    check_server,
    disable_pitr,
    enable_pitr,
    forget_pitr,
)
from pgbackups.usecases.pitr.status import PitrOverview, pitr_overview, recovery_window_of

__all__ = [
    "RESTORE_PAGE_SIZE",
    "BaseBackupResult",
    "CaptureReport",
    "PitrOverview",
    "RestorePlan",
    "WalFile",
    "apply_pitr_retention",
    "capture",
    "check_server",
    "disable_pitr",
    "enable_pitr",
    "forget_pitr",
    "pitr_databases",
    "pitr_overview",
    "plan_restore",
    "recovery_window_of",
    "request_base_backup",
    "restore_links",
    "run_base_backup",
    "start_captures",
]
