"""Opening the database: a SQLite file (WAL, 0600, created on first use) or PostgreSQL by URL, and
migrating its schema to the newest revision with Alembic (``rerankd db upgrade`` does the same).

SQLite transactions begin ``IMMEDIATE`` (a writer takes the lock when it starts, so two writers never
deadlock upgrading a read lock), with ``synchronous=NORMAL``: in WAL mode a commit survives the process
being killed. PostgreSQL replicas that start together migrate one at a time (an advisory lock).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

__all__ = ["MIGRATIONS", "make_engine", "reading", "upgrade"]

READ_ONLY = "rerankd_read_only"

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x7265_7261_6E6B  # any constant: the advisory lock replicas take while migrating


def _prepare_sqlite_file(database: str) -> None:
    """Create the file readable by its owner only, before SQLite creates it with the umask's mode."""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _switch_to_wal(cursor: Any, attempts: int = 50) -> None:
    """``PRAGMA journal_mode=WAL``, retried: on a new file, replicas starting together all switch it at
    once, and SQLite answers "database is locked" at once to all but one (it skips the busy timeout
    where waiting could deadlock). Once the file is in WAL mode the pragma changes nothing and succeeds."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    _prepare_sqlite_file(parsed.database or "")
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(connection: Any, _record: Any) -> None:
        connection.isolation_level = None  # transactions are begun below, not by the driver
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        reading = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine


def reading(engine: Engine) -> Connection:
    """A connection for reads only: on SQLite it does not take the write lock (``engine.connect()``
    does, as writes do, so that a read-then-write transaction never deadlocks)."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the schema to ``revision`` (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
