"""The store's tests run on both databases it supports: a SQLite file and a real PostgreSQL server.

``database_url`` is parametrized over the two (PostgreSQL from the session's throw-away server, a fresh
database per test); ``store`` is a migrated :class:`~rerankd.gateway.store.Store` on it, closed afterwards;
``open_store`` opens more on the same database, as replicas would. ``a_call`` makes ledger rows and
``dump`` reads every row of every table.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select

from rerankd.gateway.store import Store
from rerankd.gateway.store.holds import Hold, place
from rerankd.gateway.store.ledger import Call

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'rerankd.db'}"
    return str(request.getfixturevalue("postgres_url"))  # the server starts only when a test needs it


@pytest.fixture
def open_store(database_url: str) -> Iterator[Callable[[], Store]]:
    """Open more Stores on the test's database (replicas); every one is closed at the end."""
    opened: list[Store] = []

    def open_() -> Store:
        store = Store(database_url)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    store = open_store()
    store.upgrade()
    return store


def dump(engine: Engine) -> list[tuple[str, dict[str, object]]]:
    """Every row of every table in the database, as (table, row)."""
    metadata = MetaData()
    metadata.reflect(engine)
    rows: list[tuple[str, dict[str, object]]] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)).mappings():
                rows.append((table.name, dict(row)))
    return rows


_request_ids = itertools.count(1)
T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def a_call(**fields: Any) -> Call:
    """A 200 answer of the Cohere route for a static key, with fields replaced as given (the model that
    answered is the one asked unless ``served_by`` says otherwise)."""
    values: dict[str, Any] = {
        "at": T0,
        "request_id": f"req-{next(_request_ids)}",
        "key_id": None,
        "key_label": "static:ops",
        "route": "/v1/rerank",
        "dialect": "cohere",
        "model": "m",
        "status": 200,
        "documents": 3,
        "query_tokens": 5,
        "documents_tokens": 30,
        "total_tokens": 35,
        "search_units": 1,
        "cost_nanos": 0,
        "latency_ms": 12.5,
        "attempts": 1,
    }
    values.update(fields)
    values.setdefault("served_by", values["model"])
    return Call(**values)


def a_hold(call: Call, nanos: int = 0, tokens: int = 0, **fields: Any) -> Hold:
    """The hold of ``call`` (its request id and key), placed at T0 with a deadline a minute later."""
    assert call.key_id is not None
    values: dict[str, Any] = {
        "request_id": call.request_id,
        "key_id": call.key_id,
        "nanos": nanos,
        "tokens": tokens,
        "window": None,
        "replica": "test:1:boot",
        "created_at": T0,
        "deadline": T0 + dt.timedelta(minutes=1),
    }
    values.update(fields)
    return Hold(**values)


def hold(engine: Engine, call: Call, nanos: int, *, now: float = 0.0) -> bool:
    """Admit ``call`` holding ``nanos`` (a key without rpm/tpm): whether the budget let it through."""
    return place(engine, a_hold(call, nanos), None, None, now)[1]
