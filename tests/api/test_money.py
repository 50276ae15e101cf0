"""Money at the door, on SQLite and PostgreSQL: exact admission for a local model (a budget for N.5 calls
buys N answers, one at a time or 30 at once), tpm held under 60 concurrent calls, and calls that end
badly — input that is not text, an upstream reporting an absurd usage, a settlement that fails, a client
gone while admission or settlement waits — charged nothing and holding nothing afterwards."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rerankd_support.harness import AppServer, serve_app

from rerankd.api.app import create_app
from rerankd.config import load_settings
from rerankd.gateway.money import from_nanos, to_nanos
from rerankd.gateway.store import Store, holds, ledger
from rerankd.gateway.store import keys as key_store
from rerankd.spec import Price
from rerankd.types import CallSize
from tests.upstream.fake import REPORTED_TOKENS, FakeUpstream

QUERY = "what is the capital of the united states"
DOCUMENTS = ["Carson City is the capital of Nevada.", "Washington is the capital of the United States."]
WAIT_S = 60.0
PER_MILLION = "1000"  # 0.001 a token: a call's cost is its tokens, in millionths


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'money.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def serve(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[AppServer, Store]]]:
    """Serve a config in this process on the test's database; yields the server and a store on it."""
    monkeypatch.setenv("RERANKD_DATABASE_URL", database_url)
    stack: list[Any] = []

    def start(config: dict[str, Any]) -> tuple[AppServer, Store]:
        path = tmp_path / f"config-{len(stack)}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        context = serve_app(create_app(load_settings(path)))
        server = context.__enter__()
        store = Store(database_url)
        stack.append((context, store))
        return server, store

    yield start
    for context, store in stack:
        store.close()
        context.__exit__(None, None, None)


def tiny_config(tiny_bert: Path, **price: str) -> dict[str, Any]:
    model = {"name": "tiny", "kind": "cross-encoder", "source": str(tiny_bert), "preload": True}
    return {"models": [{**model, "price": price or {"per_million_tokens": PER_MILLION}}]}


def bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


async def fire(url: str, count: int, headers: dict[str, str], body: dict[str, Any]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=WAIT_S, limits=httpx.Limits(max_connections=count)) as client:
        return await asyncio.gather(
            *(client.post(f"{url}/v1/rerank", json=body, headers=headers) for _ in range(count))
        )


def settled(store: Store, key_id: int) -> tuple[int, int, list[holds.Hold]]:
    """The key's spend and reservation, and its holds."""
    record = key_store.get_key(store.engine, key_id)
    assert record is not None
    return record.spent_nanos, record.reserved_nanos, holds.list_holds(store.engine, key_id)


def one_call_tokens(url: str, store: Store, body: dict[str, Any]) -> int:
    _, plaintext = key_store.create_key(store.engine, "probe")
    response = httpx.post(f"{url}/v1/rerank", json=body, headers=bearer(plaintext), timeout=WAIT_S)
    assert response.status_code == 200, response.text
    return int(response.json()["usage"]["total_tokens"])


@pytest.mark.parametrize("concurrent", [1, 30], ids=["one at a time", "30 at once"])
def test_a_budget_for_n_and_a_half_calls_buys_exactly_n(
    serve: Callable[..., tuple[AppServer, Store]], tiny_bert: Path, concurrent: int
) -> None:
    server, store = serve(tiny_config(tiny_bert))
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS}
    tokens = one_call_tokens(server.url, store, body)
    cost = Price(per_million_tokens=Decimal(PER_MILLION)).cost_of(CallSize(tokens, 1))
    answers = 10
    record, plaintext = key_store.create_key(store.engine, "n.5", budget_nanos=answers * cost + cost // 2)
    if concurrent == 1:
        statuses = [
            httpx.post(
                f"{server.url}/v1/rerank", json=body, headers=bearer(plaintext), timeout=WAIT_S
            ).status_code
            for _ in range(answers + 2)
        ]
        assert statuses == [200] * answers + [402, 402]
    else:
        responses = asyncio.run(fire(server.url, concurrent, bearer(plaintext), body))
        assert sorted(r.status_code for r in responses) == [200] * answers + [402] * (concurrent - answers)
    refused = httpx.post(f"{server.url}/v1/rerank", json=body, headers=bearer(plaintext), timeout=WAIT_S)
    assert refused.status_code == 402
    assert f"this call costs {from_nanos(cost)} ({tokens} tokens" in refused.text
    assert f"{from_nanos(cost // 2)} is left" in refused.text
    assert settled(store, record.id) == (answers * cost, 0, [])
    rows = ledger.calls(store.engine, ledger.UsageFilter(key_id=record.id))
    assert sum(row.cost_nanos for row in rows) == answers * cost
    assert all(row.cost_nanos == 0 for row in rows if row.status != 200)


def _wait_for_minute_start() -> None:
    """Concurrent calls in one rate window: not in a minute's last seconds."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def test_tpm_holds_within_one_call_under_60_concurrent_calls(
    serve: Callable[..., tuple[AppServer, Store]], tiny_bert: Path
) -> None:
    server, store = serve(tiny_config(tiny_bert))
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS}
    tokens = one_call_tokens(server.url, store, body)
    tpm = 2 * tokens + 3  # room for two calls and a bit: a third is let through, a fourth never
    record, plaintext = key_store.create_key(store.engine, "tpm", tpm=tpm)
    _wait_for_minute_start()
    responses = asyncio.run(fire(server.url, 60, bearer(plaintext), body))
    answered = [r for r in responses if r.status_code == 200]
    assert {r.status_code for r in responses} <= {200, 429}
    used = sum(r.json()["usage"]["total_tokens"] for r in answered)
    assert 2 * tokens <= used < tpm + tokens, (used, tpm, tokens)
    assert len(answered) == 3
    assert settled(store, record.id)[2] == []


def test_remaining_tokens_are_what_the_window_has_left(
    serve: Callable[..., tuple[AppServer, Store]], tiny_bert: Path
) -> None:
    server, store = serve(tiny_config(tiny_bert))
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS}
    tokens = one_call_tokens(server.url, store, body)
    _, plaintext = key_store.create_key(store.engine, "tpm", tpm=1000)
    _wait_for_minute_start()
    remaining = [
        int(
            httpx.post(
                f"{server.url}/v1/rerank", json=body, headers=bearer(plaintext), timeout=WAIT_S
            ).headers["x-ratelimit-remaining-tokens"]
        )
        for _ in range(3)
    ]
    assert remaining == [1000 - tokens, 1000 - 2 * tokens, 1000 - 3 * tokens]


def test_a_lone_surrogate_is_a_400_naming_its_field_and_not_charged(
    serve: Callable[..., tuple[AppServer, Store]], tiny_bert: Path
) -> None:
    server, store = serve(tiny_config(tiny_bert))
    record, plaintext = key_store.create_key(store.engine, "k", budget_nanos=to_nanos(1))
    headers = {**bearer(plaintext), "Content-Type": "application/json"}
    bodies = {
        "documents[1]": '{"model": "tiny", "query": "q", "documents": ["fine", "bad \\ud800 text"]}',
        "query": '{"model": "tiny", "query": "\\udfff", "documents": ["fine"]}',
        "documents[0].m": '{"model": "tiny", "query": "q", "documents": [{"text": "", "m": "\\udc00"}]}',
    }
    for field, raw in bodies.items():
        path = "/cohere/v2/rerank" if field.endswith(".m") else "/v1/rerank"
        response = httpx.post(f"{server.url}{path}", content=raw.encode(), headers=headers, timeout=WAIT_S)
        assert response.status_code == 400, response.text
        assert field in response.text and "surrogate" in response.text
        assert "x-request-id" in response.headers
    assert settled(store, record.id) == (0, 0, [])


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream("jina")
    yield upstream
    upstream.close()


def upstream_config(fake: FakeUpstream, **fields: Any) -> dict[str, Any]:
    model = {"name": "up", "kind": "upstream", "provider": "jina", "base_url": fake.url, "timeout": 10}
    return {"models": [{**model, "price": {"per_million_tokens": PER_MILLION}, **fields}]}


@pytest.mark.parametrize("reported", ["-5", str(10**30), str(10**9 + 1)])
def test_an_absurd_upstream_usage_is_an_upstream_fault_not_charged(
    serve: Callable[..., tuple[AppServer, Store]], fake: FakeUpstream, reported: str
) -> None:
    server, store = serve(upstream_config(fake))
    record, plaintext = key_store.create_key(store.engine, "k", budget_nanos=to_nanos(100))
    fake.script(f"usage:{reported}")
    body = {"model": "up", "query": QUERY, "documents": DOCUMENTS}
    response = httpx.post(f"{server.url}/v1/rerank", json=body, headers=bearer(plaintext), timeout=WAIT_S)
    assert response.status_code == 502, response.text
    assert "impossible usage" in response.text
    assert settled(store, record.id) == (0, 0, [])
    [row] = ledger.calls(store.engine, ledger.UsageFilter(key_id=record.id))
    assert (row.status, row.cost_nanos) == (502, 0)
    # The next call, with a sane usage, is charged what the upstream reported.
    fake.script("ok")
    assert (
        httpx.post(
            f"{server.url}/v1/rerank", json=body, headers=bearer(plaintext), timeout=WAIT_S
        ).status_code
        == 200
    )
    assert settled(store, record.id) == (REPORTED_TOKENS * 10**6, 0, [])


def test_an_upstream_refusal_says_the_estimate_and_what_is_left(
    serve: Callable[..., tuple[AppServer, Store]], fake: FakeUpstream
) -> None:
    server, store = serve(upstream_config(fake))
    _, plaintext = key_store.create_key(store.engine, "k", budget_nanos=1000)
    body = {"model": "up", "query": QUERY, "documents": DOCUMENTS}
    response = httpx.post(f"{server.url}/v1/rerank", json=body, headers=bearer(plaintext), timeout=WAIT_S)
    assert response.status_code == 402
    assert "an estimate from about" in response.text and "0.000001 is left" in response.text
    assert fake.received == []  # refused before the upstream was called


def test_a_settlement_that_cannot_price_the_answer_releases_the_hold(
    serve: Callable[..., tuple[AppServer, Store]], fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, store = serve(upstream_config(fake))
    record, plaintext = key_store.create_key(store.engine, "k", budget_nanos=to_nanos(100))
    original = Price.cost_of

    def cost_of(price: Price, size: CallSize) -> int:
        if size.tokens == REPORTED_TOKENS:  # at settlement only: admission prices the estimate
            raise ArithmeticError("overflow")
        return original(price, size)

    monkeypatch.setattr(Price, "cost_of", cost_of)
    body = {"model": "up", "query": QUERY, "documents": DOCUMENTS}
    response = httpx.post(f"{server.url}/v1/rerank", json=body, headers=bearer(plaintext), timeout=WAIT_S)
    assert response.status_code == 502, response.text
    assert settled(store, record.id) == (0, 0, [])
    [row] = ledger.calls(store.engine, ledger.UsageFilter(key_id=record.id))
    assert (row.status, row.cost_nanos) == (502, 0)


class Gate:
    """Holds a store function until released, once armed; says when a call has entered it."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.released.wait(WAIT_S), "the test never released the gate"
        return self.function(*args, **kwargs)


def post_and_leave(server: AppServer, body: dict[str, Any], headers: dict[str, str], gate: Gate) -> None:
    """Send a call on a raw socket and close it once the call is inside ``gate``."""
    payload = json.dumps(body).encode()
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as client:
        client.sendall(
            f"POST /v1/rerank HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{head}"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        assert gate.entered.wait(WAIT_S), "the call never reached the gate"


def wait_for_row(store: Store, key_id: int) -> ledger.Call:
    deadline = time.monotonic() + WAIT_S
    while not (rows := ledger.calls(store.engine, ledger.UsageFilter(key_id=key_id))):
        assert time.monotonic() < deadline, "the call was never recorded"
        time.sleep(0.05)
    return rows[0]


@pytest.mark.parametrize("waiting", ["admission", "settlement"])
def test_a_client_gone_while_the_database_waits_is_499_and_not_charged(
    serve: Callable[..., tuple[AppServer, Store]],
    tiny_bert: Path,
    monkeypatch: pytest.MonkeyPatch,
    waiting: str,
) -> None:
    module, name = (holds, "place") if waiting == "admission" else (ledger, "record")
    gate = Gate(getattr(module, name))
    server, store = serve(tiny_config(tiny_bert))
    record, plaintext = key_store.create_key(store.engine, "k", budget_nanos=to_nanos(1))
    monkeypatch.setattr(module, name, gate)
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS}
    post_and_leave(server, body, bearer(plaintext), gate)
    time.sleep(0.5)  # the server sees the disconnect while the database work is held
    gate.released.set()
    row = wait_for_row(store, record.id)
    deadline = time.monotonic() + WAIT_S
    while (row.status, row.cost_nanos) != (499, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
        row = wait_for_row(store, record.id)
    assert (row.status, row.cost_nanos) == (499, 0)
    assert settled(store, record.id) == (0, 0, [])
