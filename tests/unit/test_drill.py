"""The drill's reading of an archive's table of contents and its row-count judgement."""

from __future__ import annotations

import pytest

from pgbackups.postgres.checks import TableRows, judge_rows
from pgbackups.postgres.contents import archive_extensions, parse_toc_entry, toc_key
from pgbackups.postgres.drill import Phases

pytestmark = pytest.mark.unit

# Lines of `pg_restore --list` (pg_dump 18) as they are.
LISTING = [
    "8; 2615 16385 SCHEMA - my schema postgres",
    "3; 3079 16524 EXTENSION - pg_stat_statements ",
    "2; 3079 16443 EXTENSION - pg_trgm ",
    "234; 1255 16431 FUNCTION public add(integer, integer) postgres",
    "222; 1259 16386 TABLE my schema odd table postgres",
    "228; 1259 16424 MATERIALIZED VIEW public mv postgres",
    "2690; 0 16424 MATERIALIZED VIEW DATA public mv postgres",
    "2519; 2606 16393 CONSTRAINT my schema odd table odd table_pkey postgres",
    "2529; 2606 16414 FK CONSTRAINT public orders orders_item_fkey postgres",
    "2693; 2613 16582 BLOB METADATA - 16582..16583 postgres",
    "2694; 0 0 BLOBS - 16582..16583 postgres",
    "2683; 0 16395 ROW SECURITY public items postgres",
]


def test_entries_become_expected_objects_without_their_owner() -> None:
    assert [toc_key(line) for line in LISTING] == [
        "SCHEMA - my schema",
        "EXTENSION - pg_stat_statements",
        "EXTENSION - pg_trgm",
        "FUNCTION public add(integer, integer)",
        "TABLE my schema odd table",
        "MATERIALIZED VIEW public mv",
        "MATERIALIZED VIEW DATA public mv",
        "CONSTRAINT my schema odd table odd table_pkey",
        "FK CONSTRAINT public orders orders_item_fkey",
        "BLOB METADATA - 16582..16583",
        "BLOBS - 16582..16583",
        "ROW SECURITY public items",
    ]


def test_the_longest_type_wins() -> None:
    assert parse_toc_entry("MATERIALIZED VIEW DATA public mv") == (
        "MATERIALIZED VIEW DATA",
        "public mv",
    )
    assert parse_toc_entry("TABLE DATA public items") == ("TABLE DATA", "public items")
    assert parse_toc_entry("NOT A TYPE x") is None


def test_the_extensions_an_archive_creates() -> None:
    assert archive_extensions(LISTING) == ["pg_stat_statements", "pg_trgm"]


def test_row_counts_pass_when_counted_and_compare_when_expected() -> None:
    found = [TableRows("public", "items", 3), TableRows("sales", "orders", 250)]
    assert judge_rows(found, None).passed
    assert judge_rows(found, None).detail == "every table counted: 2 tables, 253 rows"
    assert judge_rows(found, found).passed
    wrong = judge_rows(found, [TableRows("public", "items", 4), TableRows("x", "y", 0)])
    assert not wrong.passed
    assert wrong.detail == (
        "2 tables differ: public.items: 3 rows, 4 expected; x.y is missing (0 rows expected)"
    )


def test_row_counts_say_one_table_and_one_row_in_the_singular() -> None:
    one = [TableRows("public", "items", 1)]
    assert judge_rows(one, None).detail == "every table counted: 1 table, 1 row"
    assert judge_rows(one, one).detail == "every table counted, as expected: 1 table, 1 row"
    wrong = judge_rows(one, [TableRows("public", "items", 2)])
    assert wrong.detail == "1 table differs: public.items: 1 row, 2 expected"
    missing = judge_rows([], [TableRows("x", "y", 1)])
    assert missing.detail == "1 table differs: x.y is missing (1 row expected)"


def test_a_drills_phases_are_laid_end_to_end_and_add_up_to_the_whole() -> None:
    ticks = iter([100.0, 102.5, 104.0, 110.0, 111.0, 111.5])
    phases = Phases(clock=lambda: next(ticks))

    assert phases.lap("start") == 2.5
    phases.lap("restore")
    phases.lap("checks")
    phases.lap("restore")  # a phase met again adds up
    phases.lap("stop")

    assert phases.total() == {
        "start": 2.5,
        "restore": 2.5,
        "checks": 6.0,
        "stop": 0.5,
        "total": 11.5,
    }
