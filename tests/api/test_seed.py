"""The seed dialect (`POST /v1/rerank`) in-process: shape, top_n, usage, scores, auth, errors, OpenAPI."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml
from fastapi.testclient import TestClient

from rerankd.api.app import create_app
from rerankd.config import load_settings

KEY = "sk-local-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
SCRAPER = {"Authorization": "Bearer scraper-0123456789"}  # a key of metrics_keys
MISSING_FOLDER = "/nonexistent/rerankd-test/model-folder"

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
    "Capitalization in English grammar is the use of a capital letter at the start of a word.",
    "Capital punishment has existed in the United States since before it was a country.",
]
# Twelve documents: more than the default top_n of 10.
MANY_DOCUMENTS = [f"report {i}: " + "capital " * i + "of the state" for i in range(12)]


class Response(Protocol):
    """What the tests read of a TestClient response (httpx or httpx2, whichever Starlette uses)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Iterator[TestClient]:
    config = {
        "api_keys": [KEY],
        "metrics_keys": [SCRAPER["Authorization"].removeprefix("Bearer ")],
        "models": [
            {"name": "bm25", "kind": "bm25", "aliases": ["okapi", "rerank-english-v3.0"]},
            {"name": "tiny", "kind": "cross-encoder", "source": str(tiny_bert), "max_length": 128},
            {"name": "ghost", "kind": "cross-encoder", "source": MISSING_FOLDER},
        ],
    }
    path = tmp_path_factory.mktemp("seed-api") / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with TestClient(create_app(load_settings(path))) as test_client:
        yield test_client


def rerank(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Response:
    return client.post("/v1/rerank", json=body, headers=AUTH if headers is None else headers)


def ok(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = rerank(client, body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def assert_error(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert error["code"] == status
    return error


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# -- response shape ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["bm25", "tiny"])
def test_response_shape_and_sort_order(client: TestClient, model: str) -> None:
    response = rerank(client, {"model": model, "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"model", "results", "usage", "metadata"}
    assert data["model"] == model
    assert data["metadata"] == {"served_by": model, "attempts": [{"model": model, "ok": True}]}
    assert set(data["usage"]) == {"total_tokens", "query_tokens", "documents_tokens"}
    results = data["results"]
    assert len(results) == len(DOCUMENTS)
    for result in results:
        assert set(result) == {"index", "relevance_score", "document"}
        assert isinstance(result["index"], int)
        assert isinstance(result["relevance_score"], float)
        assert 0.0 <= result["relevance_score"] <= 1.0
        assert result["document"] == DOCUMENTS[result["index"]]
    scores = [result["relevance_score"] for result in results]
    assert scores == sorted(scores, reverse=True)
    assert sorted(result["index"] for result in results) == list(range(len(DOCUMENTS)))
    for header in ("x-total-time", "x-queue-time", "x-inference-time", "x-tokenization-time"):
        assert float(response.headers[header]) >= 0.0


def test_bm25_ranks_the_matching_document_first(client: TestClient) -> None:
    documents = ["bananas are yellow fruit", "the capital of France is Paris", "cats sleep a lot"]
    data = ok(client, {"model": "bm25", "query": "capital of France", "documents": documents})
    assert data["results"][0]["index"] == 1
    assert data["results"][0]["relevance_score"] > 0.0
    assert data["results"][-1]["relevance_score"] == 0.0


@pytest.mark.parametrize(
    ("top_n", "expected"),
    [
        pytest.param(None, len(MANY_DOCUMENTS), id="null"),
        pytest.param(0, len(MANY_DOCUMENTS), id="zero"),
        pytest.param(10**9, len(MANY_DOCUMENTS), id="huge"),
        pytest.param(len(MANY_DOCUMENTS), len(MANY_DOCUMENTS), id="exact"),
        pytest.param(3, 3, id="three"),
        pytest.param(1, 1, id="one"),
    ],
)
def test_top_n(client: TestClient, top_n: int | None, expected: int) -> None:
    data = ok(
        client, {"model": "bm25", "query": "capital state", "documents": MANY_DOCUMENTS, "top_n": top_n}
    )
    assert len(data["results"]) == expected
    full = ok(client, {"model": "bm25", "query": "capital state", "documents": MANY_DOCUMENTS, "top_n": 0})
    # The cut keeps the best ones: a prefix of the full ranking.
    assert data["results"] == full["results"][:expected]


def test_top_n_absent_defaults_to_ten(client: TestClient) -> None:
    data = ok(client, {"model": "bm25", "query": "capital state", "documents": MANY_DOCUMENTS})
    assert len(data["results"]) == 10


def test_negative_top_n_is_422(client: TestClient) -> None:
    error = assert_error(
        rerank(client, {"model": "bm25", "query": "q", "documents": DOCUMENTS, "top_n": -1}), 422
    )
    assert "top_n" in error["message"]


def test_return_documents_false_omits_the_key(client: TestClient) -> None:
    data = ok(client, {"model": "tiny", "query": QUERY, "documents": DOCUMENTS, "return_documents": False})
    assert len(data["results"]) == len(DOCUMENTS)
    for result in data["results"]:
        assert set(result) == {"index", "relevance_score"}


def test_text_object_documents(client: TestClient) -> None:
    documents: list[Any] = [
        {"text": DOCUMENTS[0], "title": "Nevada"},
        DOCUMENTS[2],
        {"text": DOCUMENTS[3]},
    ]
    data = ok(client, {"model": "bm25", "query": QUERY, "documents": documents})
    texts = [DOCUMENTS[0], DOCUMENTS[2], DOCUMENTS[3]]
    assert sorted(result["index"] for result in data["results"]) == [0, 1, 2]
    for result in data["results"]:
        assert result["document"] == texts[result["index"]]


def test_unknown_fields_are_accepted(client: TestClient) -> None:
    body = {
        "model": "bm25",
        "query": QUERY,
        "documents": DOCUMENTS,
        "user": "someone",
        "max_chunks_per_doc": 4,
        "instruction": "rank these",
        "stream": False,
    }
    plain = ok(client, {"model": "bm25", "query": QUERY, "documents": DOCUMENTS})
    assert ok(client, body)["results"] == plain["results"]


def test_retries_field_is_accepted_and_reported(client: TestClient) -> None:
    data = ok(client, {"model": "bm25", "query": QUERY, "documents": DOCUMENTS, "retries": 2})
    assert data["metadata"]["attempts"] == [{"model": "bm25", "ok": True}]
    assert_error(
        rerank(client, {"model": "bm25", "query": QUERY, "documents": DOCUMENTS, "retries": -1}), 422
    )


# -- usage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["bm25", "tiny"])
def test_usage_adds_up_and_counts_the_query_once(client: TestClient, model: str) -> None:
    def usage(documents: list[str]) -> dict[str, int]:
        data = ok(client, {"model": model, "query": QUERY, "documents": documents})
        counts: dict[str, int] = data["usage"]
        assert counts["total_tokens"] == counts["query_tokens"] + counts["documents_tokens"]
        return counts

    one = usage(DOCUMENTS[:1])
    rest = usage(DOCUMENTS[1:])
    everything = usage(DOCUMENTS)
    assert one["query_tokens"] > 0
    # The query is counted once per request, not once per (query, document) pair.
    assert everything["query_tokens"] == one["query_tokens"] == rest["query_tokens"]
    assert one["documents_tokens"] > 0
    assert everything["documents_tokens"] == one["documents_tokens"] + rest["documents_tokens"]


# -- scores --------------------------------------------------------------------------------------


def test_sigmoid_is_applied_exactly_once(client: TestClient) -> None:
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS}
    default = {r["index"]: r["relevance_score"] for r in ok(client, body)["results"]}
    raw = {r["index"]: r["relevance_score"] for r in ok(client, {**body, "raw_scores": True})["results"]}
    assert set(default) == set(raw) == set(range(len(DOCUMENTS)))
    for index, score in default.items():
        assert 0.0 < score < 1.0
        assert sigmoid(raw[index]) == pytest.approx(score, abs=1e-6)
    # Raw logits are not squashed: a second sigmoid would move them.
    assert any(abs(sigmoid(score) - score) > 1e-3 for score in default.values())
    assert len(set(default.values())) > 1, "the tiny model should tell the documents apart"


def test_raw_scores_false_is_the_default(client: TestClient) -> None:
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS}
    assert ok(client, body)["results"] == ok(client, {**body, "raw_scores": False})["results"]


# -- model names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["okapi", "rerank-english-v3.0"])
def test_aliases_reach_the_same_model(client: TestClient, alias: str) -> None:
    body = {"model": "bm25", "query": QUERY, "documents": DOCUMENTS}
    canonical = ok(client, body)
    via_alias = ok(client, {**body, "model": alias})
    assert via_alias["model"] == alias
    assert via_alias["results"] == canonical["results"]


def test_unknown_model_is_404_listing_the_models(client: TestClient) -> None:
    error = assert_error(rerank(client, {"model": "no-such-model", "query": "q", "documents": ["d"]}), 404)
    assert "no-such-model" in error["message"]
    for name in ("bm25", "tiny", "ghost"):
        assert name in error["message"]


def test_models_list(client: TestClient) -> None:
    ok(client, {"model": "bm25", "query": QUERY, "documents": DOCUMENTS})
    ok(client, {"model": "tiny", "query": QUERY, "documents": DOCUMENTS})
    response = client.get("/v1/models", headers=AUTH)
    assert response.status_code == 200
    listing = response.json()
    assert listing["object"] == "list"
    cards = {card["id"]: card for card in listing["data"]}
    assert set(cards) == {"bm25", "tiny", "ghost"}
    for card in cards.values():
        assert card["object"] == "model"
        assert card["status"] in {"not_loaded", "loading", "ready", "failed"}
        assert isinstance(card["created"], int)
    assert cards["bm25"]["kind"] == "bm25"
    assert cards["bm25"]["status"] == "ready"
    assert cards["bm25"]["aliases"] == ["okapi", "rerank-english-v3.0"]
    assert cards["tiny"]["kind"] == "cross-encoder"
    assert cards["tiny"]["status"] == "ready"
    assert cards["tiny"]["max_length"] == 128


def test_missing_model_folder_is_503_saying_how_to_fix(client: TestClient) -> None:
    error = assert_error(rerank(client, {"model": "ghost", "query": "q", "documents": ["d"]}), 503)
    assert error["type"] == "model_unavailable"
    assert "ghost" in error["message"]
    assert MISSING_FOLDER in error["message"]
    assert "to fix" in error["message"].lower()
    assert "config.json" in error["message"]
    # The failure is remembered: a second request is answered the same way, at once.
    again = assert_error(rerank(client, {"model": "ghost", "query": "q", "documents": ["d"]}), 503)
    assert again["message"] == error["message"]
    cards = {card["id"]: card for card in client.get("/v1/models", headers=AUTH).json()["data"]}
    assert cards["ghost"]["status"] == "failed"
    assert cards["ghost"]["error"] == error["message"]
    # The other models are unaffected.
    ok(client, {"model": "bm25", "query": QUERY, "documents": DOCUMENTS})


# -- input errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"model": "bm25", "query": "", "documents": DOCUMENTS}, id="empty-query"),
        pytest.param({"model": "bm25", "query": " \n\t ", "documents": DOCUMENTS}, id="blank-query"),
        pytest.param({"model": "bm25", "query": QUERY, "documents": []}, id="no-documents"),
        pytest.param({"model": "bm25", "documents": DOCUMENTS}, id="missing-query"),
        pytest.param({"query": QUERY, "documents": DOCUMENTS}, id="missing-model"),
        pytest.param({"model": "bm25", "query": QUERY, "documents": "one document"}, id="documents-string"),
        pytest.param({"model": "bm25", "query": QUERY, "documents": [{"title": "x"}]}, id="object-no-text"),
        pytest.param([QUERY], id="array-body"),
    ],
)
def test_invalid_input_is_422(client: TestClient, body: Any) -> None:
    error = assert_error(rerank(client, body), 422)
    assert error["type"] == "invalid_request"


def test_non_json_body_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/rerank", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert assert_error(response, 400)["type"] == "malformed_body"


def test_non_json_content_type_is_415(client: TestClient) -> None:
    response = client.post("/v1/rerank", content=b"query=x", headers={**AUTH, "Content-Type": "text/plain"})
    assert "application/json" in assert_error(response, 415)["message"]


def test_too_many_documents_is_413(client: TestClient) -> None:
    documents = ["d"] * 1001  # the default max_documents is 1000
    error = assert_error(rerank(client, {"model": "bm25", "query": "q", "documents": documents}), 413)
    assert "1000" in error["message"]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize(
    "documents", [["a"], ["!!!", "..."], ["", "the"]], ids=["stopword", "punct", "empty"]
)
def test_bm25_documents_without_words_score_zero(client: TestClient, documents: list[str]) -> None:
    data = ok(client, {"model": "bm25", "query": "capital", "documents": documents})
    assert [r["relevance_score"] for r in data["results"]] == [0.0] * len(documents)


def test_json_body_without_content_type_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/v1/rerank",
        content=b'{"model": "bm25", "query": "capital", "documents": ["the capital"]}',
        headers=AUTH,
    )
    assert response.status_code == 200, response.text


# -- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer sk-wrong"}, id="wrong-key"),
        pytest.param({"Authorization": "Bearer "}, id="empty-key"),
        pytest.param({"Authorization": KEY}, id="no-scheme"),
        pytest.param({"Authorization": f"Basic {KEY}"}, id="basic-scheme"),
    ],
)
def test_rerank_without_the_right_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = rerank(client, {"model": "bm25", "query": "q", "documents": ["d"]}, headers=headers)
    assert assert_error(response, 401)["type"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_right_key_is_accepted_whatever_the_scheme_case(client: TestClient, scheme: str) -> None:
    headers = {"Authorization": f"{scheme} {KEY}"}
    response = rerank(client, {"model": "bm25", "query": QUERY, "documents": DOCUMENTS}, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("path", "headers"), [("/v1/models", AUTH), ("/metrics", SCRAPER)])
def test_other_routes_need_the_key(client: TestClient, path: str, headers: dict[str, str]) -> None:
    assert_error(client.get(path), 401)
    assert client.get(path, headers=headers).status_code == 200


def test_health_is_open(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["models_configured"] == 3


def test_metrics_count_requests(client: TestClient) -> None:
    ok(client, {"model": "bm25", "query": QUERY, "documents": DOCUMENTS})
    text = client.get("/metrics", headers=SCRAPER).text
    assert 'rerankd_requests_total{model="bm25",status="200"}' in text
    assert "rerankd_models_ready" in text


# -- OpenAPI -------------------------------------------------------------------------------------


def test_openapi_documents_the_rerank_route(client: TestClient) -> None:
    response = client.get("/openapi.json", headers=AUTH)
    assert response.status_code == 200
    schema = response.json()
    operation = schema["paths"]["/v1/rerank"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request_schema = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert {"model", "query", "documents", "top_n", "retries", "return_documents", "raw_scores"} <= set(
        request_schema["properties"]
    )
    assert set(request_schema["required"]) == {"model", "query", "documents"}
    assert request_schema["properties"]["top_n"]["default"] == 10
    for status in ("401", "404", "413", "422", "429", "503"):
        assert status in operation["responses"]
    assert "/v1/models" in schema["paths"]
    assert "/health" in schema["paths"]
