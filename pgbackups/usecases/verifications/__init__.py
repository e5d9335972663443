"""Restore drills, one module per part:

- `request`: a drill requested (the API), recorded `scheduled` and started on the
  Fargate runner; the drills read back;
- `schedule`: the dispatcher's part: the drill whose hour is due started, a stale
  one reaped;
- `run`: the drill on the Fargate runner, judged, its report stored;
- `finish`: a finished drill recorded, its lock freed, its backup marked, announced.

The names callers use are re-exported here.
"""

from pgbackups.usecases.verifications.request import (
    NO_FARGATE_FOR_DRILLS,
    report_url,
    request_verification,
    show_verification,
    verifications_page,
)
from pgbackups.usecases.verifications.run import run_verification
from pgbackups.usecases.verifications.schedule import (
    reap_stale_verification,
    start_due_verification,
)

__all__ = [
    "NO_FARGATE_FOR_DRILLS",
    "reap_stale_verification",
    "report_url",
    "request_verification",
    "run_verification",
    "show_verification",
    "start_due_verification",
    "verifications_page",
]
