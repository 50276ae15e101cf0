"""The usage ledger: one row per call that reached the service, written (with the call's charge) in
the same transaction that takes its hold and settles its budget, and committed before the answer is sent;
its status is the status the client was sent (499, not charged, when the client left before its answer).

Reports filter rows by key, model and time and sum them, grouped by key, model or day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from sqlalchemy import ColumnElement, Engine, Integer, bindparam, case, func, insert, select, update

from rerankd.gateway.store.engine import reading
from rerankd.gateway.store.holds import take
from rerankd.gateway.store.limits import add_tokens, release, settle_budget
from rerankd.gateway.store.schema import api_keys, usage

__all__ = ["Call", "Cursor", "Grouping", "UsageFilter", "calls", "page", "record", "refund", "summarize"]
__all__ += ["by_model_since", "last_used"]

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


def record(engine: Engine, call: Call) -> Call:
    """Write ``call``. For a managed key, take the call's hold (``holds``): a 2xx call is charged its cost
    (or, when the cost does not fit the budget, becomes a 402 and is not charged) and its window keeps the
    tokens it used; any other call is not charged and gives back what it held. A hold released already
    (swept, or by an operator) gives nothing back twice: an answer is then charged only if it fits."""
    key_id = call.key_id
    with engine.begin() as connection:
        if key_id is not None:
            held = take(connection, call.request_id)
            reserved = held.nanos if held is not None else 0
            if 200 <= call.status < 300:
                if not settle_budget(connection, key_id, reserved, call.cost_nanos):
                    call = replace(call, status=402, cost_nanos=0)
            elif reserved:
                release(connection, key_id, reserved)
            if held is not None and held.window is not None:
                used = call.total_tokens if 200 <= call.status < 300 else 0
                add_tokens(connection, key_id, held.window, used - held.tokens)
        if not 200 <= call.status < 300:
            call = replace(call, cost_nanos=0)
        connection.execute(_INSERT, asdict(call))
    return call


_ROW = select(usage.c.key_id, usage.c.status, usage.c.cost_nanos).where(usage.c.request_id == bindparam("r"))


def refund(engine: Engine, request_id: str, status: int = 499) -> bool:
    """Undo the charge of an answered call that was never delivered (its client left while it settled):
    its row gets ``status`` and no cost, its key gets the cost back. True if it was charged and is not now;
    refunding again changes nothing."""
    with engine.begin() as connection:
        row = connection.execute(_ROW, {"r": request_id}).first()
        if row is None or not 200 <= row.status < 300:
            return False
        changed = connection.execute(
            update(usage)
            .where((usage.c.request_id == request_id) & (usage.c.status == row.status))
            .values(status=status, cost_nanos=0)
        ).rowcount
        if changed == 1 and row.key_id is not None and row.cost_nanos:
            connection.execute(
                update(api_keys)
                .where(api_keys.c.id == row.key_id)
                .values(spent_nanos=api_keys.c.spent_nanos - row.cost_nanos)
            )
        return changed == 1


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


def last_used(engine: Engine) -> dict[int, dt.datetime]:
    """When each managed key last made a call (its newest row), for the keys that made one. A subquery
    per key: each is one lookup in the (key_id, at) index, however long the ledger."""
    newest = select(func.max(usage.c.at)).where(usage.c.key_id == api_keys.c.id).scalar_subquery()
    with reading(engine) as connection:
        rows = connection.execute(select(api_keys.c.id, newest.label("at"))).all()
    return {row.id: row.at for row in rows if row.at is not None}


def by_model_since(engine: Engine, since: dt.datetime) -> list[dict[str, Any]]:
    """Per model that answered (else the model asked, as ``summarize(by="model")`` groups): calls since
    ``since``, those answered 5xx (the model or its upstreams failed; a client's mistake or a refused
    key is not the model's), and the mean and longest time of the calls answered without an error."""
    group = func.coalesce(usage.c.served_by, usage.c.model)
    answered = case((usage.c.status < 400, usage.c.latency_ms))
    statement = (
        select(
            group.label("model"),
            func.count().label("calls"),
            func.sum((usage.c.status >= 500).cast(Integer)).label("failures"),
            func.avg(answered).label("mean_ms"),
            func.max(answered).label("max_ms"),
        )
        .where(usage.c.at >= since)
        .group_by(group)
        .order_by(group)
    )
    with reading(engine) as connection:
        rows = connection.execute(statement).mappings().all()
    return [
        {
            "model": str(row["model"]),
            "calls": int(row["calls"]),
            "failures": int(row["failures"] or 0),
            "mean_ms": float(row["mean_ms"]) if row["mean_ms"] is not None else None,
            "max_ms": float(row["max_ms"]) if row["max_ms"] is not None else None,
        }
        for row in rows
    ]


# Where a page of rows ends: the last row's (at, id), the order rows are read in.
Cursor = tuple[dt.datetime, int]


def page(
    engine: Engine, where: UsageFilter, limit: int, after: Cursor | None = None
) -> list[tuple[Cursor, Call]]:
    """Up to ``limit`` filtered rows after ``after``, oldest first, each with its cursor: by time, then
    in the order written (a long call is written after shorter ones that began later, and replicas'
    rows interleave). A keyset on (at, id), so every page costs the same however deep it is."""
    names = [name for name in Call.__slots__]
    condition = where.where()
    if after is not None:
        at, row_id = after
        condition &= (usage.c.at > at) | ((usage.c.at == at) & (usage.c.id > row_id))
    statement = (
        select(usage.c.id, *(usage.c[name] for name in names))
        .where(condition)
        .order_by(usage.c.at, usage.c.id)
        .limit(limit)
    )
    with reading(engine) as connection:
        rows = connection.execute(statement).mappings().all()
    return [((row["at"], row["id"]), Call(**{name: row[name] for name in names})) for row in rows]


def calls(engine: Engine, where: UsageFilter, page_size: int = 1000) -> list[Call]:
    """Every filtered row, oldest first, read page by page (for tests and small reports; exports
    stream the pages instead)."""
    found: list[Call] = []
    after: Cursor | None = None
    while rows := page(engine, where, page_size, after):
        found.extend(call for _, call in rows)
        after = rows[-1][0]
    return found
