"""The local stack's Fargate tasks run as root and start PostgreSQL as an unprivileged
user, who must reach the server unpacked in the task's folder: a state dir that user
cannot reach puts the folders in the system's temp folder, and a killed stack's are
removed at the next start."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pgbackups.postgres.cluster import ClusterFailed, check_reachable, server_user
from pgbackups_local.ecs_runtime import EcsRuntime
from pgbackups_local.iam import Identities
from pgbackups_local.leftovers import remove_task_folders
from pgbackups_local.signatures import StackKey

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(os.geteuid() != 0, reason="only root starts the server as another user"),
]


def runtime(state_dir: Path) -> EcsRuntime:
    return EcsRuntime(
        "pgbackups-local", [], {}, state_dir / "tasks", "eu-west-1", "123456789012",
        Identities(owner=StackKey.generate()),
    )  # fmt: skip


def test_a_private_state_dir_puts_task_folders_where_the_server_reaches_them(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "private" / "state"
    state_dir.mkdir(parents=True)
    (tmp_path / "private").chmod(0o700)
    with pytest.raises(ClusterFailed):  # what the server would have met
        check_reachable(state_dir / "tasks", server_user())

    folder = runtime(state_dir)._work_dir("0123abcdef")

    try:
        assert folder.parent == Path(tempfile.gettempdir()).resolve()
        check_reachable(folder, server_user())  # the bootstrap opens the folder itself
        assert (state_dir / "tasks" / folder.name).resolve() == folder
        # A killed stack's folder goes at the next start, with its link.
        assert remove_task_folders(state_dir) == 1
        assert not folder.exists() and not (state_dir / "tasks").exists()
    finally:
        if folder.exists():
            folder.rmdir()


def test_a_reachable_state_dir_keeps_the_task_folders() -> None:
    state_dir = Path(tempfile.mkdtemp(dir="/tmp")) / "state"
    try:
        state_dir.parent.chmod(0o755)
        folder = runtime(state_dir)._work_dir("0123abcdef")
        assert folder.parent == state_dir / "tasks" and not folder.is_symlink()
    finally:
        shutil.rmtree(state_dir.parent)


def test_only_links_to_task_folders_are_followed(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (tmp_path / "state" / "tasks").mkdir(parents=True)
    (tmp_path / "state" / "tasks" / "pgbackups-task-evil").symlink_to(keep)
    remove_task_folders(tmp_path / "state")
    assert keep.is_dir()
