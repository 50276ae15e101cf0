"""The usage exports: one CSV schema for ``GET /admin/usage?format=csv`` and ``rerankd usage --csv``.

Two tables: one row per call (:data:`CALL_COLUMNS`, the ledger's rows) or one row per group of calls
(the grouping, then :data:`TOTAL_COLUMNS`), RFC 4180 (CRLF line ends, quoted where needed). Money is
exact decimal text, times ISO 8601 UTC (``Z``), empty cells are absent values.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or tab or CR, which some
strip first) as a formula, and model names, key names, labels and request ids are chosen by clients
and key holders: every text cell that starts so is written with a ``'`` in front, which spreadsheets
show as text. Numbers (a negative amount too) are written as numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import fields
from decimal import Decimal

from rerankd.gateway.accounts import CallRow, UsageTotals

__all__ = ["CALL_COLUMNS", "TOTAL_COLUMNS", "call_lines", "cell", "group_lines"]

CALL_COLUMNS: tuple[str, ...] = tuple(CallRow.columns())
TOTAL_COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(UsageTotals) if field.name != "group")

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str | int | float:
    """A value as a CSV cell: numbers as numbers, money exact, times in UTC, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _line(values: Iterable[object]) -> str:
    buffer = io.StringIO()
    # CRLF (RFC 4180) also makes the writer quote a cell holding a lone CR, which would end the line.
    csv.writer(buffer, lineterminator="\r\n").writerow([cell(value) for value in values])
    return buffer.getvalue()


async def call_lines(pages: AsyncIterable[list[CallRow]]) -> AsyncIterator[str]:
    """The per-call table: the header, then one chunk of lines per page of rows."""
    yield _line(CALL_COLUMNS)
    async for page in pages:
        yield "".join(_line(getattr(row, name) for name in CALL_COLUMNS) for row in page)


def group_lines(by: str, groups: Iterable[UsageTotals]) -> Iterator[str]:
    """The grouped table: the grouping's name and the totals, then one line per group."""
    yield _line((by, *TOTAL_COLUMNS))
    for group in groups:
        yield _line((group.group, *(getattr(group, name) for name in TOTAL_COLUMNS)))
