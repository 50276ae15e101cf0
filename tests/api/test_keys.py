"""Managed keys at the door, in-process: every refusal the gateway gives (401, 403, 402, 429), each in the
seed and Cohere dialects, the rate-limit headers, and ledger rows equal to what the clients were told."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from rerankd.api.app import create_app
from rerankd.config import load_settings
from rerankd.gateway.money import to_nanos
from rerankd.gateway.store import keys as key_store
from rerankd.gateway.store import ledger
from rerankd.gateway.store.limits import WINDOW_SECONDS

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
]
STATIC = "sk-static-0123456789"
ADMIN = "adm-0123456789"
PRICE_PER_REQUEST = "0.01"


@dataclass
class Dialect:
    path: str
    body: dict[str, Any]

    def message(self, data: dict[str, Any]) -> str:
        return str(data["message"] if "message" in data else data["error"]["message"])


DIALECTS = {
    "seed": Dialect("/v1/rerank", {"model": "bm25", "query": QUERY, "documents": DOCUMENTS}),
    "cohere": Dialect("/cohere/v2/rerank", {"model": "bm25", "query": QUERY, "documents": DOCUMENTS}),
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000 * WINDOW_SECONDS + 1.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[TestClient, Any, FakeClock]]:
    config = {
        "api_keys": [STATIC],
        "admin_keys": [ADMIN],
        "models": [
            {"name": "bm25", "kind": "bm25", "price": {"per_request": PRICE_PER_REQUEST}},
            {"name": "other", "kind": "bm25", "aliases": ["other-alias"]},
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    app = create_app(load_settings(path))
    clock = FakeClock()
    with TestClient(app) as client:
        meter = app.state.service.meter
        meter._clock = clock
        yield client, meter.store.engine, clock


def key(engine: Any, **fields: Any) -> tuple[key_store.KeyRecord, dict[str, str]]:
    record, plaintext = key_store.create_key(engine, "test", **fields)
    return record, {"Authorization": f"Bearer {plaintext}"}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_keys_that_cannot_be_used_get_401_saying_why(
    gateway: tuple[TestClient, Any, FakeClock], dialect: str
) -> None:
    client, engine, _ = gateway
    d = DIALECTS[dialect]
    past = key_store.utcnow() - dt.timedelta(seconds=1)
    cases = {
        "revoked": key(engine, revoked_at=past),
        "disabled": key(engine, disabled=True),
        "expired": key(engine, expires_at=past),
    }
    for word, (record, headers) in cases.items():
        response = client.post(d.path, json=d.body, headers=headers)
        assert response.status_code == 401, response.text
        message = d.message(response.json())
        assert word in message and record.prefix in message
    unknown = client.post(d.path, json=d.body, headers={"Authorization": "Bearer rk-not-a-key"})
    assert unknown.status_code == 401 and "invalid API key" in d.message(unknown.json())
    missing = client.post(d.path, json=d.body)
    assert missing.status_code == 401 and "missing API key" in d.message(missing.json())
    admin = client.post(d.path, json=d.body, headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.status_code == 401 and "admin key" in d.message(admin.json())
    assert client.post(d.path, json=d.body, headers={"Authorization": f"Bearer {STATIC}"}).status_code == 200


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_model_outside_the_keys_list_is_403(
    gateway: tuple[TestClient, Any, FakeClock], dialect: str
) -> None:
    client, engine, _ = gateway
    d = DIALECTS[dialect]
    _, headers = key(engine, models=["other-alias"])  # aliases name the same model
    response = client.post(d.path, json=d.body, headers=headers)
    assert response.status_code == 403
    assert "may not use model 'bm25'" in d.message(response.json())
    allowed = client.post(d.path, json={**d.body, "model": "other"}, headers=headers)
    assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_spent_budget_is_402_not_429(gateway: tuple[TestClient, Any, FakeClock], dialect: str) -> None:
    client, engine, _ = gateway
    d = DIALECTS[dialect]
    record, headers = key(engine, budget_nanos=to_nanos("0.03"))
    statuses = [client.post(d.path, json=d.body, headers=headers).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 402, 402]
    refused = client.post(d.path, json=d.body, headers=headers)
    assert "budget" in d.message(refused.json()) and "Retry-After" not in refused.headers
    after = key_store.get_key(engine, record.id)
    assert after is not None and (after.spent_nanos, after.reserved_nanos) == (to_nanos("0.03"), 0)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rpm_is_429_with_retry_after_and_the_ratelimit_headers(
    gateway: tuple[TestClient, Any, FakeClock], dialect: str
) -> None:
    client, engine, clock = gateway
    d = DIALECTS[dialect]
    _, headers = key(engine, rpm=2, tpm=100_000)
    first = client.post(d.path, json=d.body, headers=headers)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(first.headers["x-ratelimit-remaining-tokens"]) < 100_000
    # When the window resets, as OpenAI writes it ("59s": the clock starts 1 s into a minute).
    reset = 60 - clock.now % 60
    expected = f"{int(reset // 60)}m{round(reset % 60)}s" if reset >= 60 else f"{round(reset)}s"
    assert (
        first.headers["x-ratelimit-reset-requests"] == first.headers["x-ratelimit-reset-tokens"] == expected
    )
    assert client.post(d.path, json=d.body, headers=headers).status_code == 200
    clock.now += 20
    refused = client.post(d.path, json=d.body, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(WINDOW_SECONDS - 21)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert "2 requests per minute" in d.message(refused.json())
    clock.now += WINDOW_SECONDS  # the next minute
    assert client.post(d.path, json=d.body, headers=headers).status_code == 200


def test_tpm_is_429_once_the_windows_tokens_are_used(gateway: tuple[TestClient, Any, FakeClock]) -> None:
    client, engine, clock = gateway
    d = DIALECTS["seed"]
    _, headers = key(engine, tpm=30)
    used = 0
    while used < 30:
        response = client.post(d.path, json=d.body, headers=headers)
        assert response.status_code == 200
        used += response.json()["usage"]["total_tokens"]
        assert response.headers["x-ratelimit-remaining-tokens"] == str(max(0, 30 - used))
    refused = client.post(d.path, json=d.body, headers=headers)
    assert refused.status_code == 429 and "30 tokens per minute" in d.message(refused.json())
    clock.now += WINDOW_SECONDS
    assert client.post(d.path, json=d.body, headers=headers).status_code == 200


def test_keys_without_limits_get_no_ratelimit_headers(gateway: tuple[TestClient, Any, FakeClock]) -> None:
    client, engine, _ = gateway
    _, headers = key(engine)
    response = client.post("/v1/rerank", json=DIALECTS["seed"].body, headers=headers)
    assert response.status_code == 200
    assert not any(name.startswith("x-ratelimit") for name in response.headers)


def test_the_ledger_holds_what_clients_were_told(gateway: tuple[TestClient, Any, FakeClock]) -> None:
    client, engine, _ = gateway
    record, headers = key(engine, budget_nanos=to_nanos(100))
    told = {}
    for dialect in DIALECTS.values():
        for model in ("bm25", "other"):
            response = client.post(dialect.path, json={**dialect.body, "model": model}, headers=headers)
            assert response.status_code == 200
            data = response.json()
            tokens = (
                data["usage"]["total_tokens"] if "usage" in data else data["meta"]["tokens"]["input_tokens"]
            )
            told[response.headers["x-request-id"]] = (dialect.path, model, tokens)
    missing = client.post("/v1/rerank", json={**DIALECTS["seed"].body, "model": "nope"}, headers=headers)
    rows = {row.request_id: row for row in ledger.calls(engine, ledger.UsageFilter(key_id=record.id))}
    assert rows[missing.headers["x-request-id"]].status == 404
    for request_id, (path, model, tokens) in told.items():
        row = rows[request_id]
        assert (row.route, row.model, row.served_by, row.status) == (path, model, model, 200)
        assert row.total_tokens == tokens and row.key_label == record.prefix
        assert row.cost_nanos == (to_nanos(PRICE_PER_REQUEST) if model == "bm25" else 0)
        assert row.documents == 2 and row.search_units == 1 and row.attempts == 1
    after = key_store.get_key(engine, record.id)
    assert after is not None and after.spent_nanos == sum(row.cost_nanos for row in rows.values())


def test_static_and_anonymous_calls_are_in_the_ledger_too(gateway: tuple[TestClient, Any, FakeClock]) -> None:
    client, engine, _ = gateway
    response = client.post(
        "/v1/rerank", json=DIALECTS["seed"].body, headers={"Authorization": f"Bearer {STATIC}"}
    )
    [row] = ledger.calls(engine, ledger.UsageFilter())
    assert row.request_id == response.headers["x-request-id"]
    assert row.key_id is None and row.key_label.startswith("static:") and STATIC not in row.key_label
