"""The usage ledger: one row per call that reached the service, written (with the call's charge) in
the same transaction that settles its budget, and committed before the answer is sent.

Reports filter rows by key, model and time and sum them, grouped by key, model or day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from sqlalchemy import ColumnElement, Engine, Integer, func, insert, select

from rerankd.gateway.store.engine import reading
from rerankd.gateway.store.limits import add_tokens, release, settle_budget
from rerankd.gateway.store.schema import api_keys, usage

__all__ = ["Call", "Grouping", "UsageFilter", "calls", "record", "summarize"]

Grouping = Literal["key", "model", "day"]


@dataclass(frozen=True, slots=True)
class Call:
    """One ledger row."""

    at: dt.datetime
    request_id: str
    key_id: int | None
    key_label: str
    route: str
    dialect: str
    model: str
    served_by: str | None
    status: int
    documents: int
    query_tokens: int
    documents_tokens: int
    total_tokens: int
    search_units: int
    cost_nanos: int
    latency_ms: float
    attempts: int


_INSERT = insert(usage)


def record(engine: Engine, call: Call, *, reserved: int = 0, window: int | None = None) -> Call:
    """Write ``call``. For a managed key, settle its reservation: a 2xx call is charged its cost (or,
    when the cost does not fit the budget, becomes a 402 and is not charged); any other releases it."""
    key_id = call.key_id
    with engine.begin() as connection:
        if key_id is not None:
            if 200 <= call.status < 300:
                if not settle_budget(connection, key_id, reserved, call.cost_nanos):
                    call = replace(call, status=402, cost_nanos=0)
                elif window is not None:
                    add_tokens(connection, key_id, window, call.total_tokens)
            elif reserved:
                release(connection, key_id, reserved)
        if not 200 <= call.status < 300:
            call = replace(call, cost_nanos=0)
        connection.execute(_INSERT, asdict(call))
    return call


@dataclass(frozen=True, slots=True)
class UsageFilter:
    key_id: int | None = None
    model: str | None = None  # as asked, or as served
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def where(self) -> ColumnElement[bool]:
        condition: ColumnElement[bool] = usage.c.id.is_not(None)
        if self.key_id is not None:
            condition &= usage.c.key_id == self.key_id
        if self.model is not None:
            condition &= (usage.c.model == self.model) | (usage.c.served_by == self.model)
        if self.since is not None:
            condition &= usage.c.at >= self.since
        if self.until is not None:
            condition &= usage.c.at < self.until
        return condition


_SUMS = ("documents", "query_tokens", "documents_tokens", "total_tokens", "search_units", "cost_nanos")


def summarize(engine: Engine, where: UsageFilter, by: Grouping | None = None) -> list[dict[str, Any]]:
    """Calls, errors and sums of the filtered rows, in one group or grouped by key, model or day."""
    group: Any = None
    if by == "key":
        group = func.coalesce(api_keys.c.name + " (" + usage.c.key_label + ")", usage.c.key_label)
    elif by == "model":
        group = func.coalesce(usage.c.served_by, usage.c.model)
    elif by == "day":
        group = func.date(usage.c.at)
    columns = [
        func.count().label("calls"),
        func.sum((usage.c.status >= 400).cast(Integer)).label("errors"),
        *(func.coalesce(func.sum(usage.c[name]), 0).label(name) for name in _SUMS),
    ]
    source = usage.outerjoin(api_keys, usage.c.key_id == api_keys.c.id)
    statement = select(*([group.label("group")] if group is not None else []), *columns).select_from(source)
    statement = statement.where(where.where())
    if group is not None:
        statement = statement.group_by(group).order_by(group)
    with reading(engine) as connection:
        rows = connection.execute(statement).mappings().all()
    report = []
    for row in rows:
        # Counts and sums as int: PostgreSQL sums bigint columns as numeric (Decimal), SQLite as integer.
        item: dict[str, Any] = {name: int(row[name] or 0) for name in ("calls", "errors", *_SUMS)}
        if group is not None:
            item = {"group": str(row["group"]), **item}  # SQLite's date() is text, PostgreSQL's a date
        report.append(item)
    return [item for item in report if item["calls"]]


def calls(engine: Engine, where: UsageFilter, limit: int = 100_000) -> list[Call]:
    """The filtered rows themselves, oldest first (for CSV export): by time, then in the order written
    (a long call is written after shorter ones that began later, and replicas' rows interleave)."""
    names = [name for name in Call.__slots__]
    statement = (
        select(*(usage.c[name] for name in names))
        .where(where.where())
        .order_by(usage.c.at, usage.c.id)
        .limit(limit)
    )
    with reading(engine) as connection:
        rows = connection.execute(statement).mappings().all()
    return [Call(**{name: row[name] for name in names}) for row in rows]
