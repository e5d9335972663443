"""`audit [--verify]`: the hash-chained audit trail, and a check of its chain."""

from __future__ import annotations

from typing import Any

import click

from pgbackups_cli.output import Failure, _table, human_time, print_json, print_table, say
from pgbackups_cli.session import api_options, json_option, session

PAGE = 1000


def _entries(query: dict[str, Any], limit: int | None) -> tuple[list[dict[str, Any]], Any]:
    """Entries newest first (all of them when `limit` is None), and the chain's head."""
    client = session().client()
    found: list[dict[str, Any]] = []
    cursor = None
    head = None
    while True:
        size = PAGE if limit is None else min(PAGE, limit - len(found))
        page = client.get("/v1/audit", query | {"limit": size, "cursor": cursor})
        head = head or page["head"]  # the first page's: the chain as it stood
        found.extend(page["entries"])
        cursor = page["next_cursor"]
        if cursor is None or (limit is not None and len(found) >= limit):
            return found, head


@click.command("audit")
@click.option("--verify", is_flag=True, help="Check the whole chain and say where it breaks.")
@click.option("--database", "-d", "database", metavar="NAME", help="Only this database's entries.")
@click.option("--by", "by", metavar="TOKEN_NAME", help="Only this token's entries.")
@click.option("--since", metavar="TIME", help="From this RFC 3339 time (inclusive).")
@click.option("--until", metavar="TIME", help="Until this RFC 3339 time (exclusive).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@api_options
@json_option
def audit(
    verify: bool,
    database: str | None,
    by: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Who changed what, which download links and restore plans were issued, and what was
    refused: newest first. With --verify, every entry's hash and link is checked."""
    if verify:
        _verify()
        return
    query = {"database": database, "token": by, "since": since, "until": until}
    entries, head = _entries(query, limit)
    if as_json:
        print_json({"entries": entries, "head": head})
        return
    if not entries:
        say("No entries.")
        return
    table = _table("#", "AT", "TOKEN", "ROLE", "FROM", "REQUEST", "STATUS", keep_whole={"#": 1})
    for entry in entries:
        status = str(entry["status"])
        table.add_row(
            str(entry["seq"]),
            human_time(entry["at"]),
            entry["token"],
            entry["role"] or "-",
            entry["source_ip"],
            f"{entry['method']} {entry['target']}",
            f"[red]{status}[/]" if entry["status"] >= 400 else status,
        )
    click.echo("=== Audit trail")
    print_table(table)


def _verify() -> None:
    from pgbackups.domain.audit import AuditEntry, ChainHead, verify_chain

    listed, head = _entries({}, None)
    chain_head = ChainHead(int(head["seq"]), str(head["hash"]))
    try:
        entries = [
            AuditEntry(**entry) for entry in reversed(listed) if entry["seq"] <= chain_head.seq
        ]
    except TypeError as error:
        raise Failure(f"The API answered entries this CLI cannot check: {error}") from None
    problem = verify_chain(entries, chain_head)
    if problem is not None:
        raise Failure(f"The audit trail is broken at entry {problem.seq}: {problem.reason}.")
    if not entries:
        say("The audit trail is empty.")
        return
    say(
        f"The audit trail checks out: {len(entries)} entries, "
        f"{entries[0].seq} to {entries[-1].seq}, each holding the hash of the one before"
    )


COMMANDS = (audit,)
