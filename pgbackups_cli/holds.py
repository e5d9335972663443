"""`backups-hold`, `backups-release`: legal holds on backups, on the HTTP API.

A held backup is kept whatever retention says, and cannot be deleted, until it is
released (S3's legal hold on its archive, with the stack's backup lock).
"""

from __future__ import annotations

from typing import Any

import click

from pgbackups_cli.output import human_time, note, say
from pgbackups_cli.session import Session, api_options, backup_option, database_option, session


def _backup(state: Session, backup_ref: str | None, command: str) -> dict[str, Any]:
    if backup_ref is None:
        raise click.UsageError(f"{command} needs --backup ID (see `pgbackups backups`)")
    backup: dict[str, Any] = state.client().get(state.database_path("backups", backup_ref))
    return backup


@click.command("backups-hold")
@backup_option("Backup id, or `latest` (the newest done one); required.")
@database_option
@api_options
def backups_hold(backup_ref: str | None) -> None:
    """Put a backup under a legal hold: kept, and not deletable, until released."""
    state = session()
    backup = _backup(state, backup_ref, "backups-hold")
    held = state.client().put(state.database_path("backups", backup["id"], "hold"), None)
    say(f"Backup {held['id']} of {state.database_name()} is on legal hold")
    note(f"It is kept until `pgbackups backups-release --backup {held['id']}`.")


@click.command("backups-release")
@backup_option("Backup id, or `latest` (the newest done one); required.")
@database_option
@api_options
def backups_release(backup_ref: str | None) -> None:
    """Release a backup's legal hold: retention applies to it again."""
    state = session()
    backup = _backup(state, backup_ref, "backups-release")
    released = state.client().delete(state.database_path("backups", backup["id"], "hold"))
    say(f"Backup {released['id']} of {state.database_name()} released from legal hold")
    if released.get("locked_until"):
        note(f"S3 keeps it locked until {human_time(released['locked_until'])}.")


COMMANDS = [backups_hold, backups_release]
