"""Holds: what each metered call in flight holds of its key — money of the budget and tokens of its rate
window — one row per call, so that nothing is held for ever.

A hold is placed at admission (with the budget's ``reserved_nanos`` and the window's tokens, in one
transaction), changed when a fallback model takes over, and taken when the call settles (``ledger.record``,
in the settling transaction). A replica killed mid-call never settles: its holds are released by a sweep
once past their deadline, or by an operator. Taking a hold deletes its row first, and only the
transaction that deleted it gives its amounts back, so a hold is released once whoever races for it.

Every transaction locks in one order — holds, then the key's row, then its window — so concurrent
calls, sweeps and operators never deadlock on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, insert, select, update

from rerankd.gateway.store.engine import reading
from rerankd.gateway.store.limits import Window, add_tokens, count_call, release, reserve_in
from rerankd.gateway.store.schema import api_keys, holds

__all__ = ["Hold", "adjust", "list_holds", "place", "release_holds", "sweep", "take"]


@dataclass(frozen=True, slots=True)
class Hold:
    request_id: str
    key_id: int
    nanos: int
    tokens: int  # reserved in the rate window
    window: int | None  # that window (None: the key has no rpm/tpm)
    replica: str  # host:pid:boot of the server that placed it
    created_at: dt.datetime  # naive UTC
    deadline: dt.datetime  # naive UTC: a sweep releases it after this


_COLUMNS = [holds.c[name] for name in Hold.__slots__]


def place(
    engine: Engine, hold: Hold, rpm: int | None, tpm: int | None, now: float
) -> tuple[Window | None, bool]:
    """Admit a call: its money reserved, its request and tokens counted in its window (when the key has
    limits), its hold written — all or nothing. Returns the window (None without limits, or when the budget
    refused first) and whether the call may go."""
    with engine.connect() as connection, connection.begin() as transaction:
        if hold.nanos and not reserve_in(connection, hold.key_id, hold.nanos):
            return None, False
        window = None
        if rpm is not None or tpm is not None:
            window = count_call(connection, hold.key_id, rpm, tpm, now, hold.tokens)
            if not window.allowed:
                transaction.rollback()  # the reservation with it
                return window, False
        values = {name: getattr(hold, name) for name in Hold.__slots__}
        values["window"] = window.window if window is not None else None
        connection.execute(insert(holds).values(values))
        return window, True


def adjust(engine: Engine, request_id: str, nanos: int, tokens: int) -> bool:
    """Change a call's hold to ``nanos`` and ``tokens`` (another model of its chain is tried); False, the
    hold unchanged, when a larger amount does not fit the budget. A hold already released stays so."""
    with engine.begin() as connection:
        row = connection.execute(
            select(*_COLUMNS).where(holds.c.request_id == request_id).with_for_update()
        ).first()
        if row is None:
            return True
        held = Hold(*row)
        more = nanos - held.nanos
        if more > 0 and not reserve_in(connection, held.key_id, more):
            return False
        if more < 0:
            release(connection, held.key_id, -more)
        if held.window is not None:
            add_tokens(connection, held.key_id, held.window, tokens - held.tokens)
        connection.execute(
            update(holds).where(holds.c.request_id == request_id).values(nanos=nanos, tokens=tokens)
        )
        return True


def take(connection: Connection, request_id: str) -> Hold | None:
    """Delete a call's hold and return it; None when it is gone already (released, or swept). The caller
    gives its amounts back, or turns them into a charge, in the same transaction."""
    row = connection.execute(
        delete(holds).where(holds.c.request_id == request_id).returning(*_COLUMNS)
    ).first()
    return Hold(*row) if row is not None else None


def _release(connection: Connection, where: ColumnElement[bool]) -> list[Hold]:
    """Delete the holds ``where`` says (skipping any a settling call has locked: it releases them itself)
    and give back what they held."""
    chosen = select(holds.c.request_id).where(where).with_for_update(skip_locked=True)
    rows = connection.execute(delete(holds).where(holds.c.request_id.in_(chosen)).returning(*_COLUMNS)).all()
    released = [Hold(*row) for row in rows]
    per_key: dict[int, int] = defaultdict(int)
    for hold in released:
        per_key[hold.key_id] += hold.nanos
    for key_id in sorted(per_key):  # one order of keys: two sweeps never deadlock
        release(connection, key_id, per_key[key_id])
    for hold in released:
        if hold.window is not None:
            add_tokens(connection, hold.key_id, hold.window, -hold.tokens)
    return released


def sweep(engine: Engine, now: dt.datetime) -> list[Hold]:
    """Release every hold past its deadline (naive UTC): its call's replica died, or never settled it."""
    with engine.begin() as connection:
        return _release(connection, holds.c.deadline < now)


def release_holds(engine: Engine, key_id: int, request_id: str | None = None) -> list[Hold]:
    """An operator's release: a key's holds, or the one of ``request_id``. Releasing them all also resets
    the key's reservation to what its remaining holds (those settling right now) hold, clearing what an
    earlier version, which kept no rows, may have left."""
    where = holds.c.key_id == key_id
    if request_id is not None:
        where &= holds.c.request_id == request_id
    with engine.begin() as connection:
        if request_id is None:
            # The key's row first: no call of the key is admitted meanwhile. (This never waits on a hold's
            # lock — _release skips locked holds — so it cannot deadlock with a settling call.)
            connection.execute(select(api_keys.c.id).where(api_keys.c.id == key_id).with_for_update())
        released = _release(connection, where)
        if request_id is None:
            remaining = select(func.coalesce(func.sum(holds.c.nanos), 0)).where(holds.c.key_id == key_id)
            connection.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(reserved_nanos=remaining.scalar_subquery())
            )
        return released


def list_holds(engine: Engine, key_id: int | None = None) -> list[Hold]:
    """The holds of a key (or of every key), oldest first."""
    statement = select(*_COLUMNS).order_by(holds.c.created_at, holds.c.request_id)
    if key_id is not None:
        statement = statement.where(holds.c.key_id == key_id)
    with reading(engine) as connection:
        return [Hold(*row) for row in connection.execute(statement)]
