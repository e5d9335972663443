"""An archive's table of contents (`pg_restore --list`) read, and the catalog queries that
name each object the way its entry does: what the drill's "objects" check compares."""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOC_LINE = re.compile(r"^\s*\d+;\s+\d+\s+\d+\s+(?P<rest>.*)$")
# Entry types that are objects, with the catalog query naming each object as the entry
# does after its type: "schema name" ("-" for objects outside schemas), "schema table name"
# for what belongs to a table, "schema name(argument types)" for routines.
_REL = (
    "SELECT n.nspname || ' ' || c.relname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ({})"
)
_ON_TABLE = (
    "SELECT n.nspname || ' ' || c.relname || ' ' || x.{name} FROM {catalog} x "
    "JOIN pg_class c ON c.oid = x.{rel} JOIN pg_namespace n ON n.oid = c.relnamespace"
)
_ROUTINE = (
    "SELECT n.nspname || ' ' || p.proname || '(' || {args} || ')' FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind IN ({kinds})"
)
_ARGS = (
    "coalesce((SELECT string_agg(format_type(t.type, NULL), ', ' ORDER BY t.ord) "
    "FROM unnest(p.proargtypes) WITH ORDINALITY AS t(type, ord)), '')"
)


def _global(catalog: str, name: str) -> str:
    """Objects outside schemas, named "- name" as pg_dump does."""
    return f"SELECT '- ' || x.{name} FROM {catalog} x"


def _in_schema(catalog: str, name: str, namespace: str, where: str = "") -> str:
    return (
        f"SELECT n.nspname || ' ' || x.{name} FROM {catalog} x "
        f"JOIN pg_namespace n ON n.oid = x.{namespace}{where}"
    )


CATALOG_QUERIES: dict[str, str] = {
    "SCHEMA": _global("pg_namespace", "nspname"),
    "EXTENSION": _global("pg_extension", "extname"),
    "TABLE": _REL.format("'r', 'p'"),
    "VIEW": _REL.format("'v'"),
    "MATERIALIZED VIEW": _REL.format("'m'"),
    "SEQUENCE": _REL.format("'S'"),
    "FOREIGN TABLE": _REL.format("'f'"),
    "INDEX": _REL.format("'i', 'I'"),
    "CONSTRAINT": (
        "SELECT n.nspname || ' ' || coalesce(c.relname, t.typname) || ' ' || x.conname "
        "FROM pg_constraint x JOIN pg_namespace n ON n.oid = x.connamespace "
        "LEFT JOIN pg_class c ON c.oid = x.conrelid LEFT JOIN pg_type t ON t.oid = x.contypid"
    ),
    "TRIGGER": _ON_TABLE.format(name="tgname", catalog="pg_trigger", rel="tgrelid"),
    "RULE": _ON_TABLE.format(name="rulename", catalog="pg_rewrite", rel="ev_class"),
    "POLICY": _ON_TABLE.format(name="polname", catalog="pg_policy", rel="polrelid"),
    "ROW SECURITY": _REL.format("'r', 'p'") + " AND c.relrowsecurity",
    "DEFAULT": (
        "SELECT n.nspname || ' ' || c.relname || ' ' || a.attname FROM pg_attrdef x "
        "JOIN pg_class c ON c.oid = x.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = x.adrelid AND a.attnum = x.adnum"
    ),
    "FUNCTION": _ROUTINE.format(args=_ARGS, kinds="'f', 'w'"),
    "PROCEDURE": _ROUTINE.format(args=_ARGS, kinds="'p'"),
    "AGGREGATE": _ROUTINE.format(
        args=f"CASE WHEN p.pronargs = 0 THEN '*' ELSE {_ARGS} END", kinds="'a'"
    ),
    "TYPE": _in_schema("pg_type", "typname", "typnamespace"),
    "DOMAIN": _in_schema("pg_type", "typname", "typnamespace", " WHERE x.typtype = 'd'"),
    "COLLATION": _in_schema("pg_collation", "collname", "collnamespace"),
    "CONVERSION": _in_schema("pg_conversion", "conname", "connamespace"),
    "STATISTICS": _in_schema("pg_statistic_ext", "stxname", "stxnamespace"),
    "TEXT SEARCH CONFIGURATION": _in_schema("pg_ts_config", "cfgname", "cfgnamespace"),
    "TEXT SEARCH DICTIONARY": _in_schema("pg_ts_dict", "dictname", "dictnamespace"),
    "EVENT TRIGGER": _global("pg_event_trigger", "evtname"),
    "PUBLICATION": _global("pg_publication", "pubname"),
    "SERVER": _global("pg_foreign_server", "srvname"),
    "FOREIGN DATA WRAPPER": _global("pg_foreign_data_wrapper", "fdwname"),
    "LARGE OBJECT": _global("pg_largeobject_metadata", "oid"),
}
CATALOG_QUERIES["FK CONSTRAINT"] = CATALOG_QUERIES["CHECK CONSTRAINT"] = CATALOG_QUERIES[
    "CONSTRAINT"
]
CATALOG_QUERIES["BLOB"] = CATALOG_QUERIES["BLOB METADATA"] = CATALOG_QUERIES["LARGE OBJECT"]
# Entries that are data or properties of an object, not objects: nothing to look up.
NOT_OBJECTS = frozenset(
    {"TABLE DATA", "SEQUENCE SET", "SEQUENCE OWNED BY", "MATERIALIZED VIEW DATA", "BLOBS",
     "LARGE OBJECTS", "TABLE ATTACH", "INDEX ATTACH", "COMMENT", "ACL", "DEFAULT ACL",
     "ENCODING", "STDSTRINGS", "SEARCHPATH", "DATABASE", "DATABASE PROPERTIES", "SHELL TYPE",
     "PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA", "SECURITY LABEL"}
)  # fmt: skip
# Every type pg_dump writes that the check knows, longest first (a type can begin another).
_TYPES = sorted(
    {*CATALOG_QUERIES, *NOT_OBJECTS, "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "CAST",
     "TRANSFORM", "USER MAPPING", "PROCEDURAL LANGUAGE", "ACCESS METHOD", "SUBSCRIPTION",
     "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "SUBSCRIPTION TABLE"},
    key=len, reverse=True,
)  # fmt: skip


def parse_toc_entry(line: str) -> tuple[str, str] | None:
    """(type, what follows it) of a `pg_restore --list` entry ("8; 2615 16385 SCHEMA - s
    owner" → ("SCHEMA", "- s owner")) or of an expected object ("TABLE public items");
    None for a comment or an unknown type."""
    found = _TOC_LINE.match(line)
    rest = found["rest"] if found else line.strip()
    for kind in _TYPES:
        if rest.startswith(kind + " "):
            return kind, rest[len(kind) + 1 :]
    return None


def toc_key(entry: str) -> str | None:
    """An archive's entry as an expected object: "TYPE schema name" with the owner (the
    last word) left out; None for a comment."""
    parsed = parse_toc_entry(entry)
    if parsed is None:
        found = _TOC_LINE.match(entry)
        return found["rest"].rstrip() if found else None
    kind, rest = parsed
    return f"{kind} {rest.rsplit(' ', 1)[0]}" if " " in rest else f"{kind} {rest}"


def archive_extensions(entries: Iterable[str]) -> list[str]:
    """The extensions the archive's table of contents creates (`EXTENSION - name`)."""
    names = []
    for entry in entries:
        parsed = parse_toc_entry(entry)
        if parsed is not None and parsed[0] == "EXTENSION":
            names.append(parsed[1].removeprefix("- ").rsplit(" ", 1)[0])
    return names
