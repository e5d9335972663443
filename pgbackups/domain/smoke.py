"""A database's smoke queries: read-only SQL a drill runs on the restored copy, each with
what its answer must be.

An expectation is `rows <op> N` (how many rows the query returns) or
`value <op> LITERAL` (the first column of the first row), `op` one of
`= != >= <= > <`. A literal is a number (compared as a number), a quoted text
(`'paid'`, `''` for a quote; compared as text, in code-point order), `true`,
`false` or `null` (`=` and `!=` only). Values are judged in PostgreSQL's own
text form (`t`/`f` for booleans), as psql prints them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pgbackups.domain.errors import InvalidInput

MAX_SMOKE_QUERIES = 10
MAX_SQL_LENGTH = 10_000
# How much of a query a check's detail quotes.
QUOTED_SQL_LENGTH = 120

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}
_EXPECTATION = re.compile(
    r"\s*(?P<subject>rows|value)\s*(?P<op>!=|>=|<=|=|>|<)\s*(?P<operand>.*?)\s*", re.IGNORECASE
)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_TEXT = re.compile(r"'((?:[^']|'')*)'", re.DOTALL)


@dataclass(frozen=True)
class Expectation:
    """`rows` or `value`, the comparison, and the operand: an int for rows; for a value a
    Decimal, a str, True/False or None (null)."""

    subject: str
    op: str
    operand: int | Decimal | str | bool | None

    def __str__(self) -> str:
        return f"{self.subject} {self.op} {_show(self.operand)}"


def parse_expectation(text: str) -> Expectation:
    """ValueError saying what is wrong unless `text` is `rows <op> N` or `value <op> LITERAL`."""
    found = _EXPECTATION.fullmatch(text)
    if found is None:
        raise ValueError(
            f"{text!r} is not an expectation: write `rows <op> N` or `value <op> LITERAL`, "
            "op one of = != >= <= > < (e.g. `rows >= 1`, `value = 42`, `value = 'paid'`)"
        )
    subject, op, operand = found["subject"].lower(), found["op"], found["operand"]
    if subject == "rows":
        if not operand.isdigit():
            raise ValueError(f"{text!r}: rows are compared with a whole number (e.g. `rows >= 1`)")
        return Expectation(subject, op, int(operand))
    literal = _literal(operand, text)
    if (literal is None or isinstance(literal, bool)) and op not in ("=", "!="):
        raise ValueError(f"{text!r}: {operand.lower()} can only be compared with = or !=")
    return Expectation(subject, op, literal)


def _literal(operand: str, text: str) -> Decimal | str | bool | None:
    if _NUMBER.fullmatch(operand):
        return Decimal(operand)
    if quoted := _TEXT.fullmatch(operand):
        return quoted[1].replace("''", "'")
    keyword = operand.lower()
    if keyword in ("true", "false"):
        return keyword == "true"
    if keyword == "null":
        return None
    raise ValueError(
        f"{text!r}: the value must be a number, a quoted text ('paid'), true, false or null"
    )


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


class SmokeQuery(BaseModel):
    """One read-only statement and what its answer must be (`judge`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sql: str = Field(
        min_length=1, max_length=MAX_SQL_LENGTH, examples=["SELECT count(*) FROM orders"]
    )
    expect: str = Field(examples=["rows >= 1", "value > 0", "value = 'paid'"])

    @field_validator("sql")
    @classmethod
    def _has_text(cls, sql: str) -> str:
        if not sql.strip():
            raise ValueError("the query is empty")
        return sql

    @field_validator("expect")
    @classmethod
    def _is_expectation(cls, expect: str) -> str:
        parse_expectation(expect)
        return expect.strip()

    @property
    def expectation(self) -> Expectation:
        return parse_expectation(self.expect)

    def quoted(self) -> str:
        """The query in a line, for a check's detail."""
        text = " ".join(self.sql.split())
        if len(text) > QUOTED_SQL_LENGTH:
            text = text[: QUOTED_SQL_LENGTH - 1] + "…"
        return text

    def judge(self, rows: Sequence[Sequence[str | None]]) -> tuple[bool, str]:
        """Whether the rows the query returned (values in PostgreSQL's text form) meet the
        expectation, and what was found."""
        expected = self.expectation
        if expected.subject == "rows":
            found = len(rows)
            passed = _COMPARE[expected.op](found, expected.operand)
            return passed, f"{found} row{'s' if found != 1 else ''}, expected {expected}"
        if not rows or not rows[0]:
            return False, f"no row returned, expected {expected}"
        value = rows[0][0]
        shown = _show(value)
        operand = expected.operand
        if operand is None or value is None:
            passed = (value is None) == (operand is None)
            passed = passed if expected.op == "=" else not passed
        elif isinstance(operand, bool):
            if value.lower() not in ("t", "true", "f", "false"):
                return False, f"value {shown} is not a boolean, expected {expected}"
            passed = (value.lower() in ("t", "true")) == operand
            passed = passed if expected.op == "=" else not passed
        elif isinstance(operand, Decimal):
            try:
                number = Decimal(value)
            except InvalidOperation:
                return False, f"value {shown} is not a number, expected {expected}"
            passed = _COMPARE[expected.op](number, operand)
        else:
            passed = _COMPARE[expected.op](value, operand)
        return passed, f"value {shown}, expected {expected}"


SmokeQueries = Annotated[list[SmokeQuery], Field(max_length=MAX_SMOKE_QUERIES)]


def parse_smoke_queries(items: Sequence[Mapping[str, Any] | SmokeQuery]) -> list[SmokeQuery]:
    """The smoke queries of a request, or InvalidInput saying which one is wrong and why."""
    if len(items) > MAX_SMOKE_QUERIES:
        raise InvalidInput(
            f"{len(items)} smoke queries: a database has at most {MAX_SMOKE_QUERIES}"
        )
    queries = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, SmokeQuery):
            queries.append(item)
            continue
        try:
            queries.append(SmokeQuery.model_validate(item))
        except ValidationError as error:
            reasons = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'query'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in error.errors()
            )
            raise InvalidInput(f"smoke query {number}: {reasons}") from None
    return queries
