"""What a local stack leaves outside its memory, and how the next start deals with it.

A clean stop removes everything. A killed stack (SIGKILL, a crash, a closed
laptop) cannot, so the state dir keeps a note of what would outlive it:

- the demo PostgreSQL (a daemon of its own, in a temporary folder): the next start
  stops it and removes its files;
- the Fargate tasks' folders (state dir `tasks/`): the next start removes them;
- the replication slots that continuous backups reserved on servers the stack does
  not own: they make the server keep WAL until someone drops them (a developer's
  server kept 3.6 GB). A clean stop drops them; after a kill, the next start says
  which slots were left and how to drop them (it has no password to do it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("pgbackups.local")

DEMO_SERVER_NOTE = "demo-postgres.json"
SLOTS_NOTE = "replication-slots.json"
TASKS_DIR = "tasks"
# A task folder outside the state dir (tempfile.gettempdir()), linked from tasks/.
OUTSIDE_TASK_PREFIX = "pgbackups-task-"
# How often the slot note follows the catalog (continuous backups enabled or not).
SLOT_NOTE_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class LeftSlot:
    """A replication slot a database's continuous backups hold on its server."""

    database: str
    slot: str
    server: str  # the replication URL, its password masked

    def drop_command(self) -> str:
        return f"psql '{self.server}' -c \"SELECT pg_drop_replication_slot('{self.slot}')\""


# -- the demo server -----------------------------------------------------------------------


def note_demo_server(state_dir: Path, root: Path) -> None:
    (state_dir / DEMO_SERVER_NOTE).write_text(json.dumps({"root": str(root)}))


def forget_demo_server(state_dir: Path) -> None:
    (state_dir / DEMO_SERVER_NOTE).unlink(missing_ok=True)


def stop_left_demo_server(state_dir: Path) -> int | None:
    """Stop and remove the demo server a killed stack left; its postmaster's pid, if any."""
    note = state_dir / DEMO_SERVER_NOTE
    try:
        root = Path(json.loads(note.read_text())["root"])
    except (OSError, ValueError, KeyError, TypeError):
        note.unlink(missing_ok=True)
        return None
    pid = _postmaster(root / "data")
    if pid is not None:
        # Fast shutdown, then immediate: the data is throwaway.
        for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGQUIT, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if _gone(pid, wait):
                break
    shutil.rmtree(root, ignore_errors=True)
    note.unlink(missing_ok=True)
    return pid


def _postmaster(data_dir: Path) -> int | None:
    """The running postmaster of `data_dir` (postmaster.pid names the data dir too)."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, directory = int(lines[0]), lines[1]
    except (OSError, ValueError, IndexError):
        return None
    if Path(directory) != data_dir:
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"postgres" in command else None


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        time.sleep(0.1)
    return False


# -- the tasks' folders ---------------------------------------------------------------------


def remove_task_folders(state_dir: Path) -> int:
    """Remove the task folders a killed stack left; how many there were.

    A folder the stack had to put in the system's temp folder (the server a task starts
    could not reach the state dir: ecs_runtime) is linked from tasks/; only a link to
    such a folder is followed.
    """
    tasks = state_dir / TASKS_DIR
    if not tasks.is_dir():
        return 0
    count = sum(1 for path in tasks.iterdir() if path.is_dir())
    for link in tasks.iterdir():
        target = Path(os.path.realpath(link))
        if (
            link.is_symlink()
            and target.name.startswith(OUTSIDE_TASK_PREFIX)
            and (target.parent == Path(tempfile.gettempdir()).resolve())
        ):
            shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(tasks, ignore_errors=True)
    return count


# -- replication slots ---------------------------------------------------------------------


def left_slots(state_dir: Path) -> list[LeftSlot]:
    """The slots a previous run noted and did not drop (it was killed); the note goes."""
    note = state_dir / SLOTS_NOTE
    try:
        slots = [LeftSlot(**entry) for entry in json.loads(note.read_text())]
    except (OSError, ValueError, TypeError):
        slots = []
    note.unlink(missing_ok=True)
    return slots


class SlotKeeper:
    """Keeps the state dir's note of the stack's replication slots up to date, and drops
    them at a clean stop.

    `current` lists the slots now held (from the catalog); `drop` drops one.
    """

    def __init__(
        self,
        state_dir: Path,
        current: Callable[[], list[LeftSlot]],
        drop: Callable[[str], None],
        interval: float = SLOT_NOTE_INTERVAL_SECONDS,
    ) -> None:
        self.note = state_dir / SLOTS_NOTE
        self._current = current
        self._drop = drop
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="slot-note", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            self.write_note()

    def write_note(self) -> list[LeftSlot]:
        try:
            slots = self._current()
        except Exception:
            log.debug("could not read the replication slots from the catalog", exc_info=True)
            return []
        staging = self.note.with_suffix(".tmp")
        staging.write_text(json.dumps([asdict(slot) for slot in slots]))
        os.replace(staging, self.note)
        return slots

    def drop_all(self) -> None:
        """Stop following the catalog; drop every slot; say how to drop what could not be."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        undropped = []
        for slot in self.write_note():
            try:
                self._drop(slot.database)
                log.info("dropped the replication slot %s on %s", slot.slot, slot.server)
            except Exception as error:
                undropped.append(slot)
                log.warning(
                    "could not drop the replication slot %s (%s); the server keeps WAL for it "
                    "until it is dropped: %s",
                    slot.slot, type(error).__name__, slot.drop_command(),
                )  # fmt: skip
        if undropped:
            self.note.write_text(json.dumps([asdict(slot) for slot in undropped]))
        else:
            self.note.unlink(missing_ok=True)
