"""``--log-format json``: every log line one JSON object, and one access line per request with what the
call was and cost — the key's prefix, never the key. A real server, its real log file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from rerankd_support.harness import Server

ADMIN = "adm-access-log-test"


def lines_of(server: Server) -> list[dict[str, Any]]:
    text = server.log_path.read_text(encoding="utf-8")
    # The harness writes one header line per start; everything the server wrote must be JSON.
    return [json.loads(line) for line in text.splitlines() if line.strip() and not line.startswith("=== ")]


def test_json_lines_and_one_access_line_per_request(start_server: Callable[..., Server]) -> None:
    config = {
        "log_format": "json",
        "admin_keys": [ADMIN],
        "models": [{"name": "bm25", "kind": "bm25", "price": {"per_million_tokens": 2}}],
    }
    server = start_server(config)
    created = httpx.post(
        server.url + "/admin/keys",
        json={"name": "team", "budget": "5"},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    ).json()
    key, prefix = created["key"], created["prefix"]
    body = {"model": "bm25", "query": "boundary layer", "documents": ["the boundary layer", "a wing"]}
    answered = httpx.post(
        server.url + "/v1/rerank", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    refused = httpx.post(server.url + "/cohere/v2/rerank", json=body, timeout=30)
    assert (answered.status_code, refused.status_code) == (200, 401)

    # The access line is written once the answer has gone out: a client can read its answer first.
    wanted = {answered.headers["x-request-id"], refused.headers["x-request-id"]}
    deadline = time.monotonic() + 10
    while True:
        lines = lines_of(server)
        access = {line["request_id"]: line for line in lines if line["logger"] == "rerankd.access"}
        if wanted <= set(access) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    call = access[answered.headers["x-request-id"]]
    usage = answered.json()["usage"]
    assert call["status"] == 200 and call["method"] == "POST" and call["path"] == "/v1/rerank"
    assert (call["key"], call["dialect"], call["model"], call["served_by"]) == (
        prefix,
        "seed",
        "bm25",
        "bm25",
    )
    assert call["documents"] == 2 and call["tokens"] == usage["total_tokens"] > 0
    assert float(call["cost"]) == usage["total_tokens"] * 2 / 1_000_000
    assert call["queue_seconds"] >= 0 and call["compute_seconds"] >= 0 and call["seconds"] > 0
    denied = access[refused.headers["x-request-id"]]
    assert denied["status"] == 401 and "key" not in denied
    # One line per request (the harness's /health polls, the admin call, the two reranks), and nothing
    # from uvicorn's own access log.
    paths = sorted(line["path"] for line in access.values() if line["path"] != "/health")
    assert paths == ["/admin/keys", "/cohere/v2/rerank", "/v1/rerank"]
    assert not any(line["logger"] == "uvicorn.access" for line in lines)
    assert key not in server.log_path.read_text(encoding="utf-8")


def test_metrics_count_cost_and_queue_per_configured_model(start_server: Callable[..., Server]) -> None:
    config = {
        "admin_keys": [ADMIN],
        "models": [{"name": "bm25", "kind": "bm25", "preload": True, "price": {"per_request": "0.25"}}],
    }
    server = start_server(config)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    key = httpx.post(server.url + "/admin/keys", json={"name": "t"}, headers=headers, timeout=30).json()[
        "key"
    ]
    body = {"model": "bm25", "query": "wing", "documents": ["a wing", "a tail"]}
    for _ in range(3):
        answer = httpx.post(server.url + "/v1/rerank", json=body, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
    text = httpx.get(server.url + "/metrics", headers=headers, timeout=30).text
    assert 'rerankd_cost_total{model="bm25"} 0.75' in text
    assert 'rerankd_queue_inputs{model="bm25"} 0.0' in text
    assert 'rerankd_requests_total{model="bm25",status="200"} 3.0' in text
