"""Smoke queries: the expectations a drill judges a restored database's answers by."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pgbackups.domain.errors import InvalidInput
from pgbackups.domain.smoke import (
    MAX_SMOKE_QUERIES,
    SmokeQuery,
    parse_expectation,
    parse_smoke_queries,
)

pytestmark = pytest.mark.unit


def judge(expect: str, rows: list[list[str | None]]) -> tuple[bool, str]:
    return SmokeQuery(sql="SELECT 1", expect=expect).judge(rows)


@pytest.mark.parametrize(
    ("expect", "rows", "passed"),
    [
        ("rows >= 1", [["a"]], True),
        ("rows >= 1", [], False),
        ("rows = 0", [], True),
        ("rows < 2", [["a"], ["b"]], False),
        ("ROWS != 3", [["a"]], True),
        ("value = 42", [["42"]], True),
        ("value = 42", [["42.00"]], True),  # numeric's text form
        ("value = 42", [["41"]], False),
        ("value > 1.5", [["2"]], True),
        ("value <= -3", [["-3"]], True),
        ("value = 'paid'", [["paid"]], True),
        ("value = 'paid'", [["Paid"]], False),
        ("value = 'it''s'", [["it's"]], True),
        ("value != 'x'", [["y"]], True),
        ("value >= 'b'", [["c"]], True),
        ("value = true", [["t"]], True),
        ("value = false", [["t"]], False),
        ("value != true", [["f"]], True),
        ("value = null", [[None]], True),
        ("value != null", [[None]], False),
        ("value = 1", [[None]], False),
    ],
)
def test_expectations_are_judged(expect: str, rows: list[list[str | None]], passed: bool) -> None:
    assert judge(expect, rows)[0] is passed


def test_the_detail_says_what_was_found_and_expected() -> None:
    assert judge("value = 42", [["41"], ["42"]]) == (False, "value '41', expected value = 42")
    assert judge("rows >= 1", []) == (False, "0 rows, expected rows >= 1")


def test_a_value_expectation_with_no_row_fails_saying_so() -> None:
    assert judge("value = 42", []) == (False, "no row returned, expected value = 42")


def test_a_number_compared_with_text_fails_saying_so() -> None:
    passed, detail = judge("value > 0", [["abc"]])
    assert not passed
    assert "'abc' is not a number" in detail


@pytest.mark.parametrize(
    ("expect", "reason"),
    [
        ("rows >= x", "whole number"),
        ("rows >= -1", "whole number"),
        ("rows > 1.5", "whole number"),
        ("value = paid", "quoted text"),
        ("value = 'unclosed", "quoted text"),
        ("value > null", "= or !="),
        ("value < true", "= or !="),
        ("count >= 1", "is not an expectation"),
        ("rows => 1", "whole number"),
        ("rows", "is not an expectation"),
        ("", "is not an expectation"),
        ("value == 1", "quoted text"),
    ],
)
def test_bad_expectations_are_refused_clearly(expect: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_expectation(expect)
    with pytest.raises(InvalidInput, match="smoke query 1: expect: .*" + reason):
        parse_smoke_queries([{"sql": "SELECT 1", "expect": expect}])


def test_a_query_must_have_text() -> None:
    for sql in ("", "   "):
        with pytest.raises(ValidationError):
            SmokeQuery(sql=sql, expect="rows >= 1")
    with pytest.raises(InvalidInput, match="smoke query 2: sql"):
        parse_smoke_queries(
            [{"sql": "SELECT 1", "expect": "rows = 1"}, {"sql": " ", "expect": "rows = 1"}]
        )


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(InvalidInput, match="smoke query 1: timeout"):
        parse_smoke_queries([{"sql": "SELECT 1", "expect": "rows = 1", "timeout": 5}])


def test_at_most_ten_queries() -> None:
    query = {"sql": "SELECT 1", "expect": "rows = 1"}
    assert len(parse_smoke_queries([query] * MAX_SMOKE_QUERIES)) == MAX_SMOKE_QUERIES
    with pytest.raises(InvalidInput, match="11 smoke queries: a database has at most 10"):
        parse_smoke_queries([query] * (MAX_SMOKE_QUERIES + 1))


def test_a_long_query_is_quoted_short() -> None:
    query = SmokeQuery(sql="SELECT\n  " + "x, " * 100 + "1", expect="rows = 1")
    assert len(query.quoted()) <= 120
    assert query.quoted().startswith("SELECT x, x,")
