"""The gateway against real fake upstreams on 127.0.0.1: every provider's format, and every fault
(timeout, 500, 503, 429 + Retry-After, malformed JSON, reset, wrong shape, 401) with what the
caller sees: retries, backoff, fallbacks, the circuit breaker, usage, and no key leaked."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from rerankd_support.harness import Server, all_models_ready

from rerankd import deadline as deadlines
from rerankd.api.app import create_app
from rerankd.config import load_settings
from rerankd.errors import DeadlineExceeded
from rerankd.types import ScoreOptions
from rerankd.upstream import PROVIDERS
from rerankd.upstream import base as upstream_base
from rerankd.upstream.base import UpstreamScorer
from rerankd.upstream.breaker import CircuitBreaker
from rerankd.upstream.spec import UpstreamSpec
from tests.upstream.fake import LEAK_MARKER, REPORTED_TOKENS, FakeUpstream, overlap_score

KEY = "sk-upstream-0123456789-secret"
QUERY = "capital of the United States"
DOCUMENTS = ["Carson City is in Nevada", "the capital of the United States", "grammar of capital letters"]


@pytest.fixture
def fakes() -> Iterator[Callable[[str], FakeUpstream]]:
    started: list[FakeUpstream] = []

    def start(provider: str) -> FakeUpstream:
        fake = FakeUpstream(provider)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.close()


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., TestClient]]:
    monkeypatch.setenv("UPSTREAM_KEY", KEY)
    clients: list[TestClient] = []

    def make(models: list[dict[str, Any]], **settings: Any) -> TestClient:
        path = tmp_path / f"config-{len(clients)}.yaml"
        path.write_text(yaml.safe_dump({"models": models, **settings}), encoding="utf-8")
        client = TestClient(create_app(load_settings(path)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def upstream(name: str, fake: FakeUpstream, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "upstream",
        "provider": fake.provider,
        "base_url": fake.url,
        "api_key_env": "UPSTREAM_KEY",
        "upstream_model": f"{name}-upstream",
        "timeout": 2,
        "max_retries": 3,
        **fields,
    }


def rerank(client: TestClient, model: str, **fields: Any) -> Any:
    return client.post("/v1/rerank", json={"model": model, "query": QUERY, "documents": DOCUMENTS, **fields})


@pytest.mark.parametrize("provider", sorted(set(PROVIDERS) - {"rerankd"}))
def test_every_provider_format(provider: str, fakes: Callable[[str], FakeUpstream], gateway: Any) -> None:
    fake = fakes(provider)
    client = gateway([upstream("remote", fake)])
    response = rerank(client, "remote")
    assert response.status_code == 200, response.text
    data = response.json()
    expected = sorted(range(3), key=lambda i: -overlap_score(QUERY, DOCUMENTS[i]))
    assert [r["index"] for r in data["results"]] == expected
    assert data["results"][0]["relevance_score"] == pytest.approx(
        overlap_score(QUERY, DOCUMENTS[expected[0]])
    )
    assert data["usage"]["total_tokens"] == REPORTED_TOKENS  # passed through
    assert response.headers["x-rerankd-served-by"] == "remote"
    [call] = fake.received
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    if provider != "tei":  # TEI serves one model and takes no name
        assert call.body["model"] == "remote-upstream"
    assert call.path == PROVIDERS[provider].path


def test_usage_counted_when_the_upstream_reports_none(
    fakes: Any, gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fakes("jina")
    client = gateway([upstream("remote", fake)])
    fake.script(default="ok")
    original = PROVIDERS["jina"].parse

    def without_usage(body: Any, headers: Any, count: int) -> Any:
        return original({k: v for k, v in body.items() if k != "usage"}, headers, count)

    monkeypatch.setitem(PROVIDERS, "jina", dataclasses.replace(PROVIDERS["jina"], parse=without_usage))
    usage = rerank(client, "remote").json()["usage"]
    assert usage["query_tokens"] == 5 and usage["documents_tokens"] > 10  # the bundled WordPiece count


@pytest.mark.parametrize("fault", ["500", "503", "429:0", "reset", "sleep:3", "malformed", "html"])
def test_transient_faults_are_retried(fault: str, fakes: Any, gateway: Any) -> None:
    fake = fakes("cohere").script(fault, fault)
    client = gateway([upstream("remote", fake, timeout=0.5)])
    response = rerank(client, "remote", retries=2)
    assert response.status_code == 200, response.text
    assert len(fake.received) == 3
    attempts = response.json()["metadata"]["attempts"]
    assert [a["ok"] for a in attempts] == [False, False, True]


def test_retries_exhausted_answer_503_with_a_summary(fakes: Any, gateway: Any) -> None:
    fake = fakes("cohere").script(default="500")
    client = gateway([upstream("remote", fake)])
    response = rerank(client, "remote", retries=1)
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert "HTTP 500" in message and "upstream says 500" in message
    assert LEAK_MARKER not in response.text  # the raw body is summarised, not passed on
    assert len(fake.received) == 2


def test_retries_are_capped_by_the_model(fakes: Any, gateway: Any) -> None:
    fake = fakes("cohere").script(default="503")
    client = gateway([upstream("remote", fake, max_retries=1)])
    assert rerank(client, "remote", retries=5).status_code == 503
    assert len(fake.received) == 2


def test_no_retry_by_default(fakes: Any, gateway: Any) -> None:
    fake = fakes("cohere").script("503")
    client = gateway([upstream("remote", fake)])
    assert rerank(client, "remote").status_code == 503
    assert len(fake.received) == 1


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        ("400", "HTTP 400"),
        ("401", "$UPSTREAM_KEY"),
        ("wrong-shape", "no `results`"),
    ],
)
def test_permanent_faults_are_not_retried(fault: str, fragment: str, fakes: Any, gateway: Any) -> None:
    fake = fakes("cohere").script(default=fault)
    client = gateway([upstream("remote", fake)])
    response = rerank(client, "remote", retries=3)
    assert response.status_code == 502, response.text
    assert fragment in response.json()["error"]["message"]
    assert len(fake.received) == 1


@pytest.mark.parametrize("fault", ["malformed", "html"])
def test_a_body_that_is_not_json_is_retried_then_falls_back(fault: str, fakes: Any, gateway: Any) -> None:
    fake = fakes("cohere").script(default=fault)
    client = gateway([upstream("remote", fake, fallbacks=["bm25"]), {"name": "bm25", "kind": "bm25"}])
    response = rerank(client, "remote", retries=2)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "bm25"
    assert len(fake.received) == 3
    attempts = response.json()["metadata"]["attempts"]
    assert [(a["model"], a["ok"]) for a in attempts] == [("remote", False)] * 3 + [("bm25", True)]
    assert "not JSON" in attempts[0]["error"]


def test_retry_after_is_honoured(fakes: Any, gateway: Any) -> None:
    fake = fakes("jina").script("429:1")
    client = gateway([upstream("remote", fake)])
    assert rerank(client, "remote", retries=1).status_code == 200
    first, second = fake.received
    assert second.at - first.at >= 0.95


def test_retry_after_beyond_the_deadline_goes_to_the_fallback_at_once(fakes: Any, gateway: Any) -> None:
    fake = fakes("jina").script("429:30")
    client = gateway(
        [upstream("remote", fake, fallbacks=["bm25"]), {"name": "bm25", "kind": "bm25"}], request_timeout=5
    )
    began = time.monotonic()
    response = rerank(client, "remote", retries=3)
    assert time.monotonic() - began < 3
    assert response.status_code == 200 and response.json()["model"] == "bm25"
    assert len(fake.received) == 1


def test_backoff_grows_within_bounds(fakes: Any, gateway: Any) -> None:
    fake = fakes("cohere").script("500", "500", "500")
    client = gateway([upstream("remote", fake)])
    assert rerank(client, "remote", retries=3).status_code == 200
    gaps = [b.at - a.at for a, b in zip(fake.received, fake.received[1:], strict=False)]
    # exponential from 0.05 s (x2 each try) plus up to 0.05 s of jitter, never above 2 s + jitter
    for attempt, gap in enumerate(gaps):
        assert 0.05 * 2**attempt * 0.9 <= gap <= 0.05 * 2**attempt + 0.05 + 0.5, gaps


def test_fallbacks_are_tried_in_order(fakes: Any, gateway: Any) -> None:
    first, second = fakes("cohere").script(default="500"), fakes("voyage").script(default="503")
    client = gateway(
        [
            upstream("primary", first, fallbacks=["secondary", "bm25"]),
            upstream("secondary", second),
            {"name": "bm25", "kind": "bm25"},
        ]
    )
    response = rerank(client, "primary", retries=1)
    assert response.status_code == 200
    data = response.json()
    assert data["model"] == "bm25" and response.headers["x-rerankd-served-by"] == "bm25"
    assert [(a["model"], a["ok"]) for a in data["metadata"]["attempts"]] == [
        ("primary", False),
        ("primary", False),
        ("secondary", False),
        ("secondary", False),
        ("bm25", True),
    ]
    assert len(first.received) == 2 and len(second.received) == 2


def test_all_fallbacks_failing_lists_every_model(fakes: Any, gateway: Any) -> None:
    first, second = fakes("cohere").script(default="500"), fakes("jina").script(default="wrong-shape")
    client = gateway([upstream("primary", first, fallbacks=["secondary"]), upstream("secondary", second)])
    response = rerank(client, "primary")
    assert response.status_code in (502, 503)
    message = response.json()["error"]["message"]
    assert "primary:" in message and "secondary:" in message


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_circuit_breaker_opens_half_opens_and_closes(
    fakes: Any, gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The breaker reads this clock instead of the wall clock: time passes only where the test says.
    clock = FakeClock()

    def breaker_on_fake_clock(failures: int, reset_seconds: float, *_: Any) -> CircuitBreaker:
        return CircuitBreaker(failures, reset_seconds, clock)

    monkeypatch.setattr(upstream_base, "CircuitBreaker", breaker_on_fake_clock)
    fake = fakes("cohere").script(default="500")
    client = gateway(
        [
            upstream("remote", fake, breaker_failures=2, breaker_reset_seconds=0.5, fallbacks=["bm25"]),
            {"name": "bm25", "kind": "bm25"},
        ]
    )

    def circuit() -> dict[str, Any]:
        cards = {card["id"]: card for card in client.get("/v1/models").json()["data"]}
        return dict(cards["remote"]["circuit"])

    for _ in range(2):
        assert rerank(client, "remote").json()["model"] == "bm25"
    assert circuit()["circuit"] == "open" and len(fake.received) == 2
    response = rerank(client, "remote")  # open: straight to the fallback, the upstream is not called
    assert response.json()["model"] == "bm25" and len(fake.received) == 2
    assert "failing" in response.json()["metadata"]["attempts"][0]["error"]
    assert circuit()["circuit"] == "open" and circuit()["retry_in_seconds"] == 0.5
    clock.now += 0.5  # the reset time has passed
    assert circuit()["circuit"] == "half_open"
    fake.script(default="ok")
    assert rerank(client, "remote").json()["model"] == "remote"  # the probe succeeds: closed again
    assert circuit() == {"circuit": "closed", "consecutive_failures": 0, "retry_in_seconds": 0.0}
    fake.script(default="500")
    for _ in range(2):
        rerank(client, "remote")
    clock.now += 0.5
    rerank(client, "remote")  # a failed probe opens it again at once
    assert circuit()["circuit"] == "open"


def test_keys_never_leak(fakes: Any, gateway: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = fakes("cohere").script("401", "500")
    client = gateway([upstream("remote", fake)])
    texts = [rerank(client, "remote").text, rerank(client, "remote").text, client.get("/v1/models").text]
    assert fake.received[0].headers["Authorization"] == f"Bearer {KEY}"
    for text in [*texts, caplog.text]:
        assert KEY not in text
    assert "UPSTREAM_KEY" in client.get("/v1/models").text  # the variable's name is shown, not its value


def test_a_slow_upstream_holds_at_most_its_connections(fakes: Any) -> None:
    fake = fakes("jina").script(default="sleep:0.5")
    spec = UpstreamSpec.model_validate(upstream("remote", fake, max_connections=2, timeout=5))
    scorer = UpstreamScorer(spec)

    async def burst() -> None:
        await asyncio.gather(*(scorer.score(QUERY, tuple(DOCUMENTS), ScoreOptions()) for _ in range(6)))
        await scorer.close()

    began = time.monotonic()
    asyncio.run(burst())
    assert fake.max_in_flight == 2
    assert time.monotonic() - began >= 1.4  # three waves of two


def test_rerankd_as_the_upstream_of_another(
    start_server: Callable[..., Server], gateway: Any, minilm_path: Path
) -> None:
    # fp32: the same request sent directly and through the gateway is compared score for score.
    minilm = {"name": "minilm", "kind": "bi-encoder", "source": str(minilm_path), "dtype": "fp32"}
    # Loaded before the first call: on a busy machine a load on first use can outlast the gateway's timeout.
    backend = start_server({"models": [{**minilm, "preload": True}]}, ready=all_models_ready)
    front = gateway(
        [
            {
                "name": "edge",
                "kind": "upstream",
                "provider": "rerankd",
                "base_url": backend.url,
                "upstream_model": "minilm",
                "timeout": 30,
            }
        ]
    )
    body = {
        "model": "edge",
        "query": "What is the capital of the United States?",
        "documents": ["Carson City is the capital of Nevada.", "Washington, D.C. is the capital of the USA."],
    }
    response = front.post("/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["results"][0]["index"] == 1 and data["model"] == "edge"
    direct = httpx.post(f"{backend.url}/v1/rerank", json={**body, "model": "minilm"}, timeout=30).json()
    assert data["usage"] == direct["usage"]  # exact usage, passed through
    assert data["results"][0]["relevance_score"] == pytest.approx(direct["results"][0]["relevance_score"])


def test_an_upstream_call_never_runs_past_the_request_deadline(fakes: Any) -> None:
    """The call's timeout is the lesser of the upstream's and the time left; missing the deadline is not
    the upstream's failure (the breaker counts nothing)."""
    fake = fakes("jina").script(default="sleep:3")
    scorer = UpstreamScorer(UpstreamSpec.model_validate(upstream("remote", fake, timeout=2)))

    async def call(seconds: float) -> float:
        began = time.monotonic()
        with deadlines.until(began + seconds), pytest.raises(DeadlineExceeded) as info:
            await scorer.score(QUERY, tuple(DOCUMENTS), ScoreOptions())
        assert info.value.status == 503 and int(info.value.headers["Retry-After"]) >= 1
        return time.monotonic() - began

    async def both() -> list[float]:
        try:
            return [await call(0.4), await call(0.0)]
        finally:
            await scorer.close()

    waited, at_once = asyncio.run(both())
    assert 0.4 <= waited < 0.4 + 0.3
    assert at_once < 0.1
    assert len(fake.received) == 1  # a request with no time left is not sent
    assert scorer.breaker.consecutive_failures == 0


def test_request_timeout_bounds_a_slow_upstream_call(fakes: Any, gateway: Any) -> None:
    fake = fakes("cohere").script(default="sleep:3")
    client = gateway([upstream("remote", fake, timeout=2)], request_timeout=1.0)
    began = time.monotonic()
    response = rerank(client, "remote", retries=2)
    assert time.monotonic() - began < 1.0 + 0.4
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "deadline_exceeded"
    assert int(response.headers["Retry-After"]) >= 1
    assert len(fake.received) == 1, response.text  # no retry once the deadline has passed
