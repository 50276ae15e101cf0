"""End to end against real `rerankd serve` processes: the seed examples verbatim, bad input, auth,
overload (429 with Retry-After) and the built-in default config.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rerankd_support.harness import Server, rerankd_server
from rerankd_support.paths import SHARED

pytestmark = pytest.mark.slow

SEEDS = SHARED / "seeds"
SEED_MODEL_NAMES = ("jina-reranker-v2-base-multilingual", "rerank-multilingual-v3.0")
SECRET = "sk-e2e-0123456789-very-secret"
TIMEOUT = httpx.Timeout(30.0)

StartServer = Callable[..., Server]


# -- helpers -------------------------------------------------------------------------------------


def seed_requests() -> list[dict[str, Any]]:
    """Every example rerank request (a JSON object with model, query and documents) in the seed files."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for start, char in enumerate(text):
            if char != "{":
                continue
            try:
                value, _ = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                continue
            if (
                isinstance(value, dict)
                and {"model", "query", "documents"} <= set(value)
                and value not in found
            ):
                found.append(value)
    return found


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v1/rerank", json=body, headers=headers, timeout=TIMEOUT)


def assert_seed_format(data: dict[str, Any], request: dict[str, Any]) -> None:
    """The response has exactly the seed's shape, and its results make sense for the request."""
    assert set(data) == {"model", "results", "usage", "metadata"}
    assert data["model"] == request["model"]
    assert isinstance(data["metadata"], dict)
    assert set(data["usage"]) == {"total_tokens", "query_tokens", "documents_tokens"}
    assert all(isinstance(count, int) and count > 0 for count in data["usage"].values())
    usage = data["usage"]
    assert usage["total_tokens"] == usage["query_tokens"] + usage["documents_tokens"]
    documents = request["documents"]
    top_n = request.get("top_n", 10)
    assert len(data["results"]) == min(top_n or len(documents), len(documents))
    for result in data["results"]:
        assert set(result) == {"index", "relevance_score", "document"}
        assert isinstance(result["index"], int)
        assert isinstance(result["relevance_score"], float)
        assert result["document"] == documents[result["index"]]
    scores = [result["relevance_score"] for result in data["results"]]
    assert scores == sorted(scores, reverse=True)
    assert len({result["index"] for result in data["results"]}) == len(data["results"])


def assert_json_error(response: httpx.Response) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert error["code"] == response.status_code
    return error


def assert_still_serving(server: Server, model: str = "bm25") -> None:
    assert server.alive, server.log()[-3000:]
    assert httpx.get(f"{server.url}/health", timeout=TIMEOUT).status_code == 200
    response = post(server.url, {"model": model, "query": "capital city", "documents": ["the capital city"]})
    assert response.status_code == 200, response.text


# -- servers (one per module each) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_server(start_server: StartServer, minilm_path: Path) -> Server:
    """A user's config: their clients' model names mapped onto the bundled all-MiniLM-L6-v2."""
    return start_server(
        {
            "models": [
                {
                    "name": "all-minilm-l6-v2",
                    "kind": "bi-encoder",
                    "source": str(minilm_path),
                    "aliases": list(SEED_MODEL_NAMES),
                    "preload": True,
                },
                {"name": "bm25", "kind": "bm25"},
            ]
        }
    )


@pytest.fixture(scope="module")
def auth_server(start_server: StartServer) -> Server:
    # Debug logging: the key must stay out of the log even at the most verbose level.
    return start_server(
        {"api_keys": [SECRET], "log_level": "debug", "models": [{"name": "bm25", "kind": "bm25"}]}
    )


@pytest.fixture(scope="module")
def overload_server(start_server: StartServer, tiny_bert: Path) -> Server:
    return start_server(
        {
            "max_queue_pairs": 8,
            "models": [
                {"name": "tiny", "kind": "cross-encoder", "source": str(tiny_bert), "preload": True},
                {"name": "bm25", "kind": "bm25"},
            ],
        }
    )


# -- (a) the seed examples -----------------------------------------------------------------------


def test_seed_files_hold_the_example_requests() -> None:
    requests = seed_requests()
    assert {request["model"] for request in requests} == set(SEED_MODEL_NAMES)
    assert any(len(request["documents"]) == 5 for request in requests)


@pytest.mark.parametrize("request_body", seed_requests(), ids=lambda body: f"{body['model']}-{body['query']}")
def test_seed_example_request_verbatim(seed_server: Server, request_body: dict[str, Any]) -> None:
    headers = {"Accept": "application/json", "Authorization": "Bearer sk-any"}
    response = post(seed_server.url, request_body, headers)
    assert response.status_code == 200, response.text
    data = response.json()
    assert_seed_format(data, request_body)
    if any(document.startswith("Washington, D.C.") for document in request_body["documents"]):
        assert request_body["documents"][2].startswith("Washington, D.C.")
        assert data["results"][0]["index"] == 2, data["results"]


def test_seed_chinese_query_with_chinese_documents(seed_server: Server) -> None:
    body = {
        "model": "rerank-multilingual-v3.0",
        "query": "美国首都是哪里?",
        "documents": [
            "华盛顿特区是美国的首都",
            "卡森城是内华达州的首府",
            "英语语法中的大写规则",
            "塞班岛在太平洋",
        ],
        "top_n": 10,
        "retries": 0,
    }
    response = post(seed_server.url, body)
    assert response.status_code == 200, response.text
    assert_seed_format(response.json(), body)
    assert len(response.json()["results"]) == 4


# -- (b) bad input -------------------------------------------------------------------------------

GOOD = {"model": "bm25", "query": "capital", "documents": ["the capital", "a city"]}
JSON = {"Content-Type": "application/json"}

# (id, request keyword arguments, expected status)
BAD_INPUTS: list[tuple[str, dict[str, Any], int | set[int]]] = [
    ("query-number", {"json": {**GOOD, "query": 42}}, 422),
    ("documents-string", {"json": {**GOOD, "documents": "the capital"}}, 422),
    ("top_n-string", {"json": {**GOOD, "top_n": "abc"}}, 422),
    ("documents-with-number", {"json": {**GOOD, "documents": ["the capital", 7]}}, 422),
    ("empty-query", {"json": {**GOOD, "query": ""}}, 422),
    ("whitespace-query", {"json": {**GOOD, "query": "   \t\n "}}, 422),
    ("empty-documents", {"json": {**GOOD, "documents": []}}, 422),
    ("negative-top_n", {"json": {**GOOD, "top_n": -3}}, 422),
    ("non-json-body", {"content": b"model=bm25&query=capital", "headers": JSON}, 400),
    ("truncated-json", {"content": b'{"model": "bm25", "query": ', "headers": JSON}, 400),
    ("text-plain", {"content": json.dumps(GOOD).encode(), "headers": {"Content-Type": "text/plain"}}, 415),
    ("form-urlencoded", {"data": {"model": "bm25", "query": "capital", "documents": "x"}}, 415),
    ("unknown-model", {"json": {**GOOD, "model": "no-such-model"}}, 404),
    ("missing-model", {"json": {"query": "capital", "documents": ["x"]}}, 422),
    ("missing-query", {"json": {"model": "bm25", "documents": ["x"]}}, 422),
    ("ten-thousand-documents", {"json": {**GOOD, "documents": [f"doc {i}" for i in range(10_000)]}}, 413),
    ("five-megabyte-document", {"json": {**GOOD, "documents": ["capital " * 655_360]}}, 413),
    ("array-body", {"json": [GOOD]}, 422),
    ("string-body", {"json": "rerank please"}, 422),
    ("deep-array-body", {"content": b"[" * 200_000 + b"]" * 200_000, "headers": JSON}, {400, 413, 422}),
    (
        "deep-object-body",
        {"content": b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "headers": JSON},
        {400, 413, 422},
    ),
    ("nested-garbage-fields", {"json": {"model": {"x": [[{"y": [None] * 3}]] * 4}, "query": [[[]]]}}, 422),
]


@pytest.mark.parametrize(
    ("request_kwargs", "expected"), [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_gets_a_json_4xx_and_the_server_lives(
    seed_server: Server, request_kwargs: dict[str, Any], expected: int | set[int]
) -> None:
    response = httpx.post(f"{seed_server.url}/v1/rerank", timeout=TIMEOUT, **request_kwargs)
    assert_json_error(response)
    assert response.status_code in (expected if isinstance(expected, set) else {expected})
    assert_still_serving(seed_server)


def test_huge_top_n_returns_every_document(seed_server: Server) -> None:
    documents = ["the capital", "a city", "a river", "the capital of a state"]
    response = post(seed_server.url, {**GOOD, "documents": documents, "top_n": 10**12})
    assert response.status_code == 200, response.text
    assert sorted(result["index"] for result in response.json()["results"]) == [0, 1, 2, 3]


def test_unknown_model_error_lists_the_models(seed_server: Server) -> None:
    error = assert_json_error(post(seed_server.url, {**GOOD, "model": "gpt-reranker"}))
    assert "all-minilm-l6-v2" in error["message"] and "bm25" in error["message"]


# -- (c) auth ------------------------------------------------------------------------------------


def test_auth(auth_server: Server) -> None:
    url = auth_server.url
    for headers in ({}, {"Authorization": "Bearer sk-wrong-key"}, {"Authorization": SECRET}):
        response = post(url, GOOD, headers)
        assert response.status_code == 401
        assert_json_error(response)
        models = httpx.get(f"{url}/v1/models", headers=headers, timeout=TIMEOUT)
        assert models.status_code == 401
    good = {"Authorization": f"Bearer {SECRET}"}
    assert post(url, GOOD, good).status_code == 200
    assert post(url, GOOD, {"Authorization": f"bearer {SECRET}"}).status_code == 200
    assert httpx.get(f"{url}/v1/models", headers=good, timeout=TIMEOUT).status_code == 200
    assert httpx.get(f"{url}/health", timeout=TIMEOUT).status_code == 200
    assert auth_server.alive
    log = auth_server.log()
    assert "/v1/rerank" in log, "the access log should show the requests"
    assert SECRET not in log
    assert "sk-wrong-key" not in log


# -- (d) overload --------------------------------------------------------------------------------


async def _fire(url: str, count: int, documents: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:

        async def one(i: int) -> httpx.Response:
            body = {"model": "tiny", "query": f"query number {i} about capitals", "documents": documents}
            return await client.post("/v1/rerank", json=body)

        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), timeout=90)


def test_overload_gets_429_with_retry_after(overload_server: Server) -> None:
    documents = [f"document {i}: " + "the capital city of a state in the union " * 12 for i in range(6)]
    responses = asyncio.run(_fire(overload_server.url, 40, documents))
    statuses = [response.status_code for response in responses]
    assert len(statuses) == 40
    assert set(statuses) <= {200, 429}, statuses
    assert 200 in statuses and 429 in statuses, statuses
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert assert_json_error(response)["type"] == "overloaded"
        else:
            assert len(response.json()["results"]) == 6
    assert_still_serving(overload_server, model="tiny")


# -- (e) the built-in default config -------------------------------------------------------------


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python -m rerankd serve --port P` with no --config: the packaged default configuration."""
    workdir = tmp_path_factory.mktemp("default-server")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("RERANKD_")}
    server = rerankd_server(
        None,
        workdir,
        name="default-server",
        base_env=environment,
        # An empty Hugging Face cache, offline: the hub cross-encoders cannot be found.
        env={"HF_HOME": str(workdir / "hf-home")},
        cwd=workdir,
    )
    with server:
        yield server


def _model_cards(url: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{url}/v1/models", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return {card["id"]: card for card in response.json()["data"]}


def test_default_config_lists_the_offline_models_ready_at_start(default_server: Server) -> None:
    cards = _model_cards(default_server.url)
    assert cards["bm25"]["status"] == "ready"
    assert cards["all-minilm-l6-v2"]["status"] == "ready"


def test_default_config_serves_bm25_and_minilm(default_server: Server) -> None:
    cards = _model_cards(default_server.url)
    assert {"bm25", "all-minilm-l6-v2", "bge-reranker-v2-m3"} <= set(cards)
    assert cards["all-minilm-l6-v2"]["status"] == "ready"
    assert cards["all-minilm-l6-v2"]["kind"] == "bi-encoder"
    assert cards["bm25"]["kind"] == "bm25"
    for model in ("bm25", "all-minilm-l6-v2"):
        body = {
            "model": model,
            "query": "capital of the United States",
            "documents": ["Washington is the capital"],
        }
        response = post(default_server.url, body)
        assert response.status_code == 200, response.text
    cards = _model_cards(default_server.url)
    assert cards["bm25"]["status"] == "ready"


def test_default_config_hub_model_offline_is_a_quick_503(default_server: Server) -> None:
    began = time.monotonic()
    response = post(default_server.url, {"model": "bge-reranker-v2-m3", "query": "q", "documents": ["d"]})
    assert time.monotonic() - began < 30
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["type"] == "model_unavailable"
    message = error["message"]
    assert "bge-reranker-v2-m3" in message
    assert "to fix" in message.lower()
    assert "hf download BAAI/bge-reranker-v2-m3" in message
    cards = _model_cards(default_server.url)
    assert cards["bge-reranker-v2-m3"]["status"] == "failed"
    assert cards["bge-reranker-v2-m3"]["error"] == message
    assert default_server.alive  # still running
