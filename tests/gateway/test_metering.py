"""The metered gateway with real servers: an exact budget under 200 concurrent calls on two replicas
(SQLite and PostgreSQL), revocation seen by another replica at once, no answered call lost to SIGTERM or
SIGKILL, and no key in plain text on disk or in a log."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rerankd_support.harness import Server

from rerankd.gateway.money import to_nanos
from rerankd.gateway.store import Store, ledger
from rerankd.gateway.store import keys as key_store

pytestmark = pytest.mark.slow

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
]
BODY = {"model": "bm25", "query": QUERY, "documents": DOCUMENTS}
CONFIG = {"models": [{"name": "bm25", "kind": "bm25", "price": {"per_request": 1}}]}

StartServer = Callable[..., Server]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def store_of(url: str) -> Store:
    store = Store(url)
    store.upgrade()
    return store


async def fire(urls: list[str], count: int, headers: dict[str, str]) -> list[httpx.Response]:
    """``count`` calls at once, spread over the replicas."""
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        calls = [
            client.post(f"{urls[i % len(urls)]}/v1/rerank", json=BODY, headers=headers) for i in range(count)
        ]
        return await asyncio.gather(*calls)


def test_a_budget_holds_under_200_concurrent_calls_on_two_replicas(
    start_server: StartServer, database_url: str
) -> None:
    env = {"RERANKD_DATABASE_URL": database_url}
    replicas = [start_server(CONFIG, env=env), start_server(CONFIG, env=env)]
    store = store_of(database_url)
    record, plaintext = key_store.create_key(store.engine, "fifty", budget_nanos=to_nanos(50))
    responses = asyncio.run(fire([r.url for r in replicas], 200, {"Authorization": f"Bearer {plaintext}"}))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 50 + [402] * 150
    after = key_store.get_key(store.engine, record.id)
    assert after is not None and (after.spent_nanos, after.reserved_nanos) == (to_nanos(50), 0)
    rows = ledger.calls(store.engine, ledger.UsageFilter(key_id=record.id))
    assert len(rows) == 200
    assert sum(row.cost_nanos for row in rows) == after.spent_nanos
    assert {r.headers["x-request-id"] for r in responses if r.status_code == 200} == {
        row.request_id for row in rows if row.status == 200
    }
    store.close()


def test_revocation_reaches_another_replica_within_two_seconds(
    start_server: StartServer, postgres_url: str
) -> None:
    env = {"RERANKD_DATABASE_URL": postgres_url}
    first, second = start_server(CONFIG, env=env), start_server(CONFIG, env=env)
    store = store_of(postgres_url)
    record, plaintext = key_store.create_key(store.engine, "soon revoked")
    headers = {"Authorization": f"Bearer {plaintext}"}
    for replica in (first, second):
        assert httpx.post(f"{replica.url}/v1/rerank", json=BODY, headers=headers).status_code == 200
    key_store.update_key(store.engine, record.id, revoked_at=key_store.utcnow())  # as the admin API does
    revoked_at = time.monotonic()
    while httpx.post(f"{second.url}/v1/rerank", json=BODY, headers=headers).status_code != 401:
        assert time.monotonic() - revoked_at < 2.0
        time.sleep(0.05)
    refused = httpx.post(f"{first.url}/v1/rerank", json=BODY, headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    store.close()


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_answered_call_is_lost_when_the_server_is_killed(
    start_server: StartServer, tmp_path: Path, kill: signal.Signals
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    server = start_server(CONFIG, env={"RERANKD_DATABASE_URL": url})
    store = store_of(url)
    _, plaintext = key_store.create_key(store.engine, "load")
    headers = {"Authorization": f"Bearer {plaintext}"}
    answered: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                try:
                    response = http.post(f"{server.url}/v1/rerank", json=BODY, headers=headers)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    answered.append(response.headers["x-request-id"])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(answered) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.proc is not None
    os.kill(server.proc.pid, kill)  # mid-load
    server.proc.wait(timeout=30)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answered) >= 100
    recorded = {
        row.request_id for row in ledger.calls(store.engine, ledger.UsageFilter()) if row.status == 200
    }
    lost = set(answered) - recorded
    assert not lost, f"{len(lost)} of {len(answered)} answered calls are not in the ledger"
    store.close()


def test_no_key_in_plain_text_on_disk_or_in_the_log(start_server: StartServer, tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    static = "sk-static-secret-0123456789"
    server = start_server({**CONFIG, "api_keys": [static]}, env={"RERANKD_DATABASE_URL": f"sqlite:///{path}"})
    store = store_of(f"sqlite:///{path}")
    _, plaintext = key_store.create_key(store.engine, "secret")
    for key in (plaintext, static, "rk-wrong-key-0123456789"):
        httpx.post(f"{server.url}/v1/rerank", json=BODY, headers={"Authorization": f"Bearer {key}"})
    server.stop()
    store.close()
    files: list[Any] = [path, Path(f"{path}-wal"), server.log_path]
    for file in files:
        if file.exists():
            data = file.read_bytes()
            for key in (plaintext, static):
                assert key.encode() not in data, f"a key in plain text in {file.name}"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
