"""`return_spans` in every dialect: each result's best window as a character range of the document as sent
and its score, documented in the OpenAPI schema; and a hybrid model over HTTP (usage counts both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from rerankd.api import DIALECTS
from rerankd.api.app import create_app
from rerankd.config import load_settings

QUERY = "capital of the United States"
# The last document is several windows long (64-token windows) and multi-byte.
DOCUMENTS = [
    "Carson City is the capital city of Nevada.",
    "华盛顿是美国的首都。 " * 30 + "Washington is the capital of the United States.",
    "",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Iterator[TestClient]:
    config = {
        "models": [
            {
                "name": "tiny",
                "kind": "cross-encoder",
                "source": str(tiny_bert),
                "max_length": 64,
                "best_window_weight": 1.0,
            },
            {"name": "bm25", "kind": "bm25"},
            {
                "name": "hybrid",
                "kind": "hybrid",
                "fusion": "rrf",
                "components": [{"model": "bm25"}, {"model": "tiny", "weight": 2}],
            },
        ]
    }
    path = tmp_path_factory.mktemp("spans") / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with TestClient(create_app(load_settings(path))) as test_client:
        yield test_client


def body_for(dialect: str, **extra: Any) -> dict[str, Any]:
    texts = "texts" if dialect == "tei" else "documents"
    return {"model": "tiny", "query": QUERY, texts: DOCUMENTS, **extra}


def results_of(dialect: str, data: Any) -> list[dict[str, Any]]:
    if dialect == "tei":
        return list(data)
    return list(data["data"] if dialect == "voyage" else data["results"])


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_every_dialect_returns_spans_when_asked(client: TestClient, dialect: str) -> None:
    path = DIALECTS[dialect].paths[0]
    plain = client.post(path, json=body_for(dialect))
    assert plain.status_code == 200, plain.text
    assert all("span" not in result for result in results_of(dialect, plain.json()))

    response = client.post(path, json=body_for(dialect, return_spans=True))
    assert response.status_code == 200, response.text
    results = results_of(dialect, response.json())
    assert len(results) == len(DOCUMENTS)
    score_key = "score" if dialect == "tei" else "relevance_score"
    for result in results:
        span, document = result["span"], DOCUMENTS[result["index"]]
        assert set(span) == {"start", "end", "score"}
        assert 0 <= span["start"] <= span["end"] <= len(document)
        # best_window_weight 1: a document scores as its best window
        assert span["score"] == pytest.approx(result[score_key])
    long = next(result["span"] for result in results if result["index"] == 1)
    assert long["end"] - long["start"] < len(DOCUMENTS[1])  # one window of several
    short = next(result["span"] for result in results if result["index"] == 0)
    assert (short["start"], short["end"]) == (0, len(DOCUMENTS[0]))


def test_spans_of_bm25_are_whole_documents(client: TestClient) -> None:
    data = client.post(
        "/seed/v1/rerank", json={**body_for("seed", return_spans=True), "model": "bm25"}
    ).json()
    for result in data["results"]:
        assert result["span"]["start"] == 0 and result["span"]["end"] == len(DOCUMENTS[result["index"]])
        assert result["span"]["score"] == pytest.approx(result["relevance_score"])


def test_openapi_documents_the_span_of_every_dialect(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schemas["ResultSpan"]["properties"]) == {"start", "end", "score"}
    for name in ("SeedResult", "CohereResult", "JinaResult", "VoyageResult", "InfinityResult", "VllmResult"):
        assert "span" in schemas[name]["properties"], name
    assert "return_spans" in schemas["SeedRerankRequest"]["properties"]


def test_hybrid_over_http_counts_both_models_and_spans_come_from_the_windowed_one(client: TestClient) -> None:
    body = {"model": "hybrid", "query": QUERY, "documents": DOCUMENTS, "return_spans": True, "top_n": 0}
    data = client.post("/seed/v1/rerank", json=body).json()
    alone = {
        model: client.post("/seed/v1/rerank", json={**body, "model": model}).json()["usage"]
        for model in ("bm25", "tiny")
    }
    assert data["usage"]["documents_tokens"] == sum(usage["documents_tokens"] for usage in alone.values())
    scores = [result["relevance_score"] for result in data["results"]]
    assert scores == sorted(scores, reverse=True)
    assert max(scores) <= 1 / 61 + 2 / 61  # rrf: weights over (60 + rank)
    tiny = client.post("/seed/v1/rerank", json={**body, "model": "tiny"}).json()["results"]
    assert {r["index"]: r["span"] for r in data["results"]} == {r["index"]: r["span"] for r in tiny}
