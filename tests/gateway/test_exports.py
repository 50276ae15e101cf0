"""gateway.exports: the one CSV schema of the usage exports (admin API and CLI) — formula-like text
neutralised, numbers left numbers, and every ledger row streamed page by page in (at, id) order — on a
SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from rerankd.gateway.accounts import Accounts, open_accounts
from rerankd.gateway.exports import CALL_COLUMNS, TOTAL_COLUMNS, call_lines, cell, group_lines
from rerankd.gateway.money import to_nanos
from rerankd.gateway.store import ledger

# What a client or key holder may name a model, a key or a request, and a spreadsheet would run.
FORMULAS = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
START = dt.datetime(2026, 3, 1, 12, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def accounts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Accounts]:
    url = f"sqlite:///{tmp_path / 'exports.db'}"
    if request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    with open_accounts(url) as opened:
        opened.page_size = 7  # 25 rows: four pages, the last one short
        yield opened


def write(accounts: Accounts, n: int, at: dt.datetime, *, model: str = "bm25", request_id: str = "") -> None:
    ledger.record(
        accounts.store.engine,
        ledger.Call(
            at=at,
            request_id=request_id or f"req-{n:02d}",
            key_id=None,
            key_label=FORMULAS[n % len(FORMULAS)] if n % 2 else "static:0123abcd",
            route="/v1/rerank",
            dialect="seed",
            model=model,
            served_by=model,
            status=200,
            documents=2,
            query_tokens=3,
            documents_tokens=7,
            total_tokens=10,
            search_units=1,
            cost_nanos=to_nanos("0.001"),
            latency_ms=4.0,
            attempts=1,
        ),
    )


def exported(accounts: Accounts, **filters: object) -> str:
    async def text() -> str:
        return "".join([chunk async for chunk in call_lines(await accounts.call_pages(**filters))])  # type: ignore[arg-type]

    return asyncio.run(text())


@pytest.mark.parametrize("text", FORMULAS)
def test_text_that_a_spreadsheet_would_run_is_neutralised(text: str) -> None:
    assert cell(text) == "'" + text
    assert cell("bm25") == "bm25" and cell("a=b") == "a=b" and cell("") == ""


def test_numbers_stay_numbers_even_negative() -> None:
    assert cell(Decimal("-0.5")) == "-0.5" and cell(Decimal("1E-9")) == "0.000000001"
    assert cell(-3) == -3 and cell(2.5) == 2.5 and cell(None) == ""
    assert cell(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)) == "2026-03-01T12:00:00Z"
    line = next(iter(csv.reader(io.StringIO("".join(group_lines("model", []))))))
    assert line == ["model", *TOTAL_COLUMNS]


def test_every_row_is_exported_in_order_a_page_at_a_time(accounts: Accounts) -> None:
    # 25 rows; several share a time (the id breaks the tie), and they are written out of time order.
    times = [START + dt.timedelta(seconds=(n * 7) % 10) for n in range(25)]
    for n, at in enumerate(times):
        write(accounts, n, at)
    rows = list(csv.DictReader(io.StringIO(exported(accounts))))
    assert list(rows[0]) == list(CALL_COLUMNS)
    expected = [f"req-{n:02d}" for n in sorted(range(25), key=lambda n: (times[n], n))]
    assert [row["request_id"] for row in rows] == expected
    assert all(row["cost"] == "0.001" and row["status"] == "200" for row in rows)
    # A filter that keeps some rows: still all of them, still across pages.
    later = list(csv.DictReader(io.StringIO(exported(accounts, since=START + dt.timedelta(seconds=5)))))
    assert len(later) == sum(at >= START + dt.timedelta(seconds=5) for at in times)


def test_formula_like_names_are_exported_as_text(accounts: Accounts) -> None:
    for n, formula in enumerate(FORMULAS):
        write(accounts, n, START + dt.timedelta(seconds=n), model=formula, request_id=formula)
    rows = list(csv.reader(io.StringIO(exported(accounts))))[1:]
    columns = list(CALL_COLUMNS)
    for row, formula in zip(rows, FORMULAS, strict=True):
        for name in ("model", "served_by", "request_id"):
            assert row[columns.index(name)] == "'" + formula
        label = row[columns.index("key_label")]
        assert not label.startswith(("=", "+", "-", "@", "\t", "\r"))
    report = asyncio.run(accounts.usage(by="model"))
    grouped = list(csv.reader(io.StringIO("".join(group_lines("model", report.groups)))))[1:]
    assert sorted(row[0] for row in grouped) == sorted("'" + formula for formula in FORMULAS)
    assert all(not row[0][1:].startswith("'") for row in grouped)  # neutralised once


def test_an_unknown_key_is_refused_before_the_export_starts(accounts: Accounts) -> None:
    with pytest.raises(Exception, match="no key rk-AAAAAAAA"):
        asyncio.run(accounts.call_pages(key="rk-AAAAAAAA"))
