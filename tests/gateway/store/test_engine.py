"""Opening and migrating the database (rerankd.gateway.store.engine), on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from rerankd.gateway.store import Store
from rerankd.gateway.store.keys import create_key, list_keys

TABLES = {"alembic_version", "api_keys", "holds", "rate_windows", "usage"}


def _revision(store: Store) -> list[str]:
    with store.engine.connect() as connection:
        return [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]


def test_upgrade_creates_the_tables(store: Store) -> None:
    assert TABLES <= set(inspect(store.engine).get_table_names())
    assert _revision(store) == ["0002"]


def test_upgrade_twice_is_idempotent(store: Store, open_store: Callable[[], Store]) -> None:
    created, _ = create_key(store.engine, "kept")
    store.upgrade()  # the same Store again
    replica = open_store()
    replica.upgrade()  # and another one on the same database, as a restarted replica would
    assert _revision(store) == ["0002"]
    assert [key.id for key in list_keys(replica.engine)] == [created.id]


def test_a_new_sqlite_file_is_created_private_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "rerankd.db"  # its folder does not exist yet either
    store = Store(f"sqlite:///{path}")
    try:
        store.upgrade()
        create_key(store.engine, "k")
        with store.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        files = [path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm"))]
        for file in files:
            if file.exists():  # SQLite gives -wal and -shm the database file's mode
                assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        assert Path(f"{path}-wal").exists()
    finally:
        store.close()


def test_replicas_upgrading_one_database_at_once_all_succeed(open_store: Callable[[], Store]) -> None:
    """Replicas that start together migrate the same database: one does it, the others find it done."""
    stores = [open_store() for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def upgrade(store: Store) -> None:
        try:
            start.wait()
            store.upgrade()
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=upgrade, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert _revision(stores[0]) == ["0002"]
    assert TABLES <= set(inspect(stores[-1].engine).get_table_names())


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_postgres_url_names_a_fresh_database_of_a_local_server(database_url: str, store: Store) -> None:
    url = make_url(database_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "127.0.0.1"
    assert set(inspect(store.engine).get_table_names()) == TABLES


async def test_store_runs_functions_off_the_event_loop(store: Store) -> None:
    record, _ = await store.run(create_key, store.engine, "async")
    assert [key.name for key in await store.run(list_keys, store.engine)] == ["async"]
    assert record.name == "async"
