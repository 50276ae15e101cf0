"""The gateway's database: managed keys, rate windows and the usage ledger (SQLAlchemy 2, Alembic).

``Store`` opens the database a ``database_url`` names and runs the blocking statements of
``keys``, ``limits`` and ``ledger`` on a small thread pool of its own, so the event loop never waits
on the database. A leaf: it knows nothing of HTTP, models or the service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine

from rerankd.gateway.store.engine import make_engine, upgrade

__all__ = ["Store"]

P = ParamSpec("P")
T = TypeVar("T")


class Store:
    def __init__(self, url: str, *, threads: int = 8) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="store")

    def upgrade(self) -> None:
        """Migrate the schema to the newest revision."""
        upgrade(self.engine)

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking store function (``function(engine, *args, **kwargs)``) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, lambda: function(*args, **kwargs))

    def ping(self) -> None:
        """One round trip to the database (readiness probes)."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        self.engine.dispose()
