"""Databases' health as `pgbackups status` prints it: those that are not ok, with the
reasons the API gives (its sentences, wrapped), for a person or a cron job's mail."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

import click

# The API's reason codes as a person names them; an unknown code is shown as it is.
TITLES = {
    "backup_failed": "backup failed",
    "backups_stale": "no recent backup",
    "pitr_broken": "continuous backups broken",
    "pitr_lagging": "continuous backups lagging",
    "restore_failed": "restore failed",
    "verification_failed": "restore drill failed",
    "verification_overdue": "restore drill overdue",
}
WIDTH = 80


def not_ok(databases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The databases whose health is not ok, failing ones first (an API that does not
    judge health gives none)."""
    judged = [d for d in databases if (d.get("health") or {}).get("status", "ok") != "ok"]
    return sorted(judged, key=lambda d: d["health"]["status"] != "failing")


def summary(databases: list[dict[str, Any]]) -> str:
    """`shop failing, crm warning`."""
    return ", ".join(f"{d['name']} {d['health']['status']}" for d in databases)


def print_health(databases: list[dict[str, Any]]) -> None:
    """Each database's reasons under a `===` title, its message wrapped and indented."""
    for database in databases:
        health = database["health"]
        words = "is failing" if health["status"] == "failing" else "needs attention"
        since = f" (since {_when(health['since'])})" if health.get("since") else ""
        click.echo("")
        click.echo(f"=== {database['name']} {words}{since}")
        for reason in health.get("reasons", []):
            title = TITLES.get(reason["code"], reason["code"])
            click.echo(f"{title} since {_when(reason['since'])}:")
            for line in textwrap.wrap(str(reason["message"]), WIDTH - 2):
                click.echo(f"  {line}")


def _when(moment: str) -> str:
    parsed = datetime.fromisoformat(moment)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return f"{parsed.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
