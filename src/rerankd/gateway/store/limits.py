"""What a key may still do, kept in the database so that every replica sees the same: requests and tokens
per one-minute window, and money held by calls in flight (reserved) against the key's budget. (Placing
and releasing a call's hold, which uses these, is ``holds``.)

Each step is one atomic statement, so concurrent calls, on one replica or many, cannot both take the
last request of a window or the last of a budget.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from rerankd.gateway.store.schema import api_keys, rate_windows

__all__ = ["WINDOW_SECONDS", "Window", "add_tokens", "count_call", "count_request", "release", "reserve"]
__all__ += ["reserve_in"]
__all__ += ["settle_budget", "window_of"]

WINDOW_SECONDS = 60


def window_of(now: float) -> int:
    return int(now // WINDOW_SECONDS)


@dataclass(frozen=True, slots=True)
class Window:
    """A key's current window after this call was counted (or refused)."""

    window: int
    requests: int  # counted in this window, this call included when it was let through
    tokens: int  # used or reserved in this window, this call's reservation included when let through
    allowed: bool
    resets_in: float  # seconds until the next window


# The statements of every metered call, built once: building SQLAlchemy statements per call costs more
# than running them.
_HERE = (rate_windows.c.key_id == bindparam("k")) & (rate_windows.c.window == bindparam("w"))
_WINDOW = select(rate_windows.c.requests, rate_windows.c.tokens).where(_HERE)
_PRUNE = delete(rate_windows).where(
    (rate_windows.c.key_id == bindparam("k")) & (rate_windows.c.window < bindparam("w"))
)
_ADD_TOKENS = update(rate_windows).where(_HERE).values(tokens=rate_windows.c.tokens + bindparam("t"))
_RESERVE = (
    update(api_keys)
    .where(
        (api_keys.c.id == bindparam("k"))
        & (
            api_keys.c.budget_nanos.is_(None)
            | (api_keys.c.spent_nanos + api_keys.c.reserved_nanos + bindparam("n") <= api_keys.c.budget_nanos)
        )
    )
    .values(reserved_nanos=api_keys.c.reserved_nanos + bindparam("n"))
)
_RELEASE = (
    update(api_keys)
    .where(api_keys.c.id == bindparam("k"))
    .values(reserved_nanos=api_keys.c.reserved_nanos - bindparam("n"))
)
_SETTLE = (
    update(api_keys)
    .where(
        (api_keys.c.id == bindparam("k"))
        & (
            api_keys.c.budget_nanos.is_(None)
            | (
                api_keys.c.spent_nanos + api_keys.c.reserved_nanos - bindparam("r") + bindparam("c")
                <= api_keys.c.budget_nanos
            )
        )
    )
    .values(
        reserved_nanos=api_keys.c.reserved_nanos - bindparam("r"),
        spent_nanos=api_keys.c.spent_nanos + bindparam("c"),
    )
)


@functools.cache
def _count(dialect: str, rpm_limited: bool, tpm_limited: bool) -> Any:
    """Insert the window with this request and its tokens, or add them to it — while under the rpm and
    the tpm, checked on the row as it is locked, so concurrent calls cannot both take the last of either."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(rate_windows)
    statement = insert.values(key_id=bindparam("k"), window=bindparam("w"), requests=1, tokens=bindparam("t"))
    under = []
    if rpm_limited:
        under.append(rate_windows.c.requests < bindparam("rpm"))
    if tpm_limited:
        under.append(rate_windows.c.tokens < bindparam("tpm"))
    return statement.on_conflict_do_update(
        index_elements=[rate_windows.c.key_id, rate_windows.c.window],
        set_={"requests": rate_windows.c.requests + 1, "tokens": rate_windows.c.tokens + bindparam("t")},
        where=and_(*under) if under else None,
    ).returning(rate_windows.c.requests, rate_windows.c.tokens)


def count_call(
    connection: Connection, key_id: int, rpm: int | None, tpm: int | None, now: float, tokens: int = 0
) -> Window:
    """Count one request and reserve its ``tokens`` in the key's window, unless the window's requests or
    tokens are used up: a window's tokens stay below ``tpm`` plus one call's."""
    window = window_of(now)
    resets_in = (window + 1) * WINDOW_SECONDS - now
    where = {"k": key_id, "w": window}
    current = connection.execute(_WINDOW, where).first()
    requests, used = (current[0], current[1]) if current else (0, 0)
    if (tpm is not None and used >= tpm) or (rpm is not None and rpm < 1):  # (an insert counts 1)
        return Window(window, requests, used, False, resets_in)
    statement = _count(connection.dialect.name, rpm is not None, tpm is not None)
    counted = connection.execute(statement, {**where, "t": tokens, "rpm": rpm, "tpm": tpm}).first()
    if counted is None:  # the window is full
        after = connection.execute(_WINDOW, where).first()
        return Window(window, *(after or (requests, used)), False, resets_in)
    if counted[0] == 1:  # a new window: the key's older ones are done with
        connection.execute(_PRUNE, where)
    return Window(window, counted[0], counted[1], True, resets_in)


def count_request(engine: Engine, key_id: int, rpm: int | None, tpm: int | None, now: float) -> Window:
    """Count one request in the key's window unless its requests or tokens are used up."""
    with engine.begin() as connection:
        return count_call(connection, key_id, rpm, tpm, now)


def add_tokens(connection: Connection, key_id: int, window: int, tokens: int) -> None:
    connection.execute(_ADD_TOKENS, {"k": key_id, "w": window, "t": tokens})


def reserve_in(connection: Connection, key_id: int, nanos: int) -> bool:
    return connection.execute(_RESERVE, {"k": key_id, "n": nanos}).rowcount == 1


def reserve(engine: Engine, key_id: int, nanos: int) -> bool:
    """Hold ``nanos`` of the key's budget for a call; False when the budget cannot cover it."""
    with engine.begin() as connection:
        return reserve_in(connection, key_id, nanos)


def release(connection: Connection, key_id: int, nanos: int) -> None:
    connection.execute(_RELEASE, {"k": key_id, "n": nanos})


def settle_budget(connection: Connection, key_id: int, reserved: int, cost: int) -> bool:
    """Turn a reservation into the call's real cost; False (and the reservation released) if the real
    cost does not fit the budget — the call is then not charged, and not answered."""
    if connection.execute(_SETTLE, {"k": key_id, "r": reserved, "c": cost}).rowcount == 1:
        return True
    release(connection, key_id, reserved)
    return False
