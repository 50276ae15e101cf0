"""Upstreams that echo the credentials they were sent — in JSON, HTML and plain-text refusals, from a key
in ``api_key_env`` or user:password in ``base_url`` — behind a real ``rerankd serve``: the client's
bodies (attempts, 502/503 messages), the metrics and the server's whole log (httpx's and uvicorn's lines
included) show none of them, nor a client key sent in the query string."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from rerankd_support.harness import Server

from rerankd.redaction import REDACTED
from tests.upstream.fake import FakeUpstream

KEY = "upstream-key-7f3a9c1e5b2d"  # no key shape: only the configured keys name it
SHAPED = "sk-live-0123456789abcdefghij"
USER, PASSWORD = "svc-reranker", "hunter2-correct-horse"
CLIENT = "client-query-key-0042"
SECRETS = (KEY, SHAPED, PASSWORD, f"{USER}:", CLIENT)
QUERY = "capital of the United States"
DOCUMENTS = ["Carson City is in Nevada", "the capital of the United States"]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeUpstream]]:
    started = {
        "json": FakeUpstream("cohere").script(default="echo-json:401"),
        "html": FakeUpstream("jina").script(default="echo-html:500"),
        "text": FakeUpstream("voyage").script(default="echo-text:403"),
        "basic": FakeUpstream("cohere").script(default="echo-text:401"),
    }
    yield started
    for fake in started.values():
        fake.close()


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server], fakes: dict[str, FakeUpstream]) -> Server:
    def upstream(name: str, key_env: str | None, **fields: Any) -> dict[str, Any]:
        fake = fakes[name]
        return {
            "name": name,
            "kind": "upstream",
            "provider": fake.provider,
            "base_url": fake.url,
            "api_key_env": key_env,
            "timeout": 5,
            **fields,
        }

    basic_url = fakes["basic"].url.replace("http://", f"http://{USER}:{PASSWORD}@")
    models = [
        upstream("json", "UPSTREAM_KEY", fallbacks=["html", "text", "basic", "bm25"]),
        upstream("html", "UPSTREAM_KEY"),
        upstream("text", "SHAPED_KEY"),
        upstream("basic", None, base_url=basic_url),
        {**upstream("json", "UPSTREAM_KEY"), "name": "all-fail", "fallbacks": ["html", "text", "basic"]},
        {"name": "bm25", "kind": "bm25"},
    ]
    return start_server({"models": models}, env={"UPSTREAM_KEY": KEY, "SHAPED_KEY": SHAPED})


def rerank(server: Server, model: str, query: str = "") -> httpx.Response:
    body = {"model": model, "query": QUERY, "documents": DOCUMENTS}
    return httpx.post(f"{server.url}/v1/rerank{query}", json=body, timeout=30)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_attempts_quote_the_refusals_without_the_credentials(
    server: Server, fakes: dict[str, FakeUpstream]
) -> None:
    response = rerank(server, "json")
    assert response.status_code == 200, response.text
    attempts = response.json()["metadata"]["attempts"]
    assert [(a["model"], a["ok"]) for a in attempts] == [
        ("json", False),
        ("html", False),
        ("text", False),
        ("basic", False),
        ("bm25", True),
    ]
    for attempt in attempts[:4]:
        assert "invalid api key" in attempt["error"] and REDACTED in attempt["error"], attempt
    assert_clean(response.text)
    # they were sent, and echoed: there was something to redact
    assert fakes["json"].received[-1].headers["Authorization"] == f"Bearer {KEY}"
    assert fakes["text"].received[-1].headers["Authorization"] == f"Bearer {SHAPED}"
    assert fakes["basic"].received[-1].headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("model", "status", "said"),
    [
        ("text", 502, "refused the call: HTTP 403"),
        ("html", 503, "HTTP 500"),
        ("basic", 502, "refused the call: HTTP 401"),
        ("all-fail", 502, "every model failed"),
    ],
)
def test_error_messages_quote_the_refusals_without_the_credentials(
    server: Server, model: str, status: int, said: str
) -> None:
    response = rerank(server, model)
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert said in message and "invalid api key" in message and REDACTED in message
    assert_clean(response.text)


def test_nothing_in_the_metrics_or_the_log(server: Server) -> None:
    for model in ("json", "all-fail"):
        rerank(server, model)
    assert rerank(server, "bm25", f"?api_key={CLIENT}").status_code == 200
    assert httpx.get(f"{server.url}/v1/models?x=1&key={CLIENT}", timeout=30).status_code == 200
    models = httpx.get(f"{server.url}/v1/models", timeout=30).text
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert_clean(models)
    assert_clean(metrics)
    log = server.log()
    assert_clean(log)
    # the lines are there, redacted: httpx's line of every call, uvicorn's access line of every request
    assert f"HTTP Request: POST http://{REDACTED}@127.0.0.1:" in log
    assert f"/v1/rerank?api_key={REDACTED} HTTP/1.1" in log
    assert f"/v1/models?x=1&key={REDACTED} HTTP/1.1" in log
