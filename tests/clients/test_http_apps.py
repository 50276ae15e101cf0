"""The rerank requests of Dify, RAGFlow and open-webui (applications, not installable libraries), sent
with httpx to a real server the way each builds them: URL from the configured base URL, body, headers,
and the way each reads the answer. What they share: ``top_n`` equal to the number of documents, larger,
null or absent, and one result expected per document.

- Dify, "OpenAI-API-compatible" rerank: ``<endpoint_url>/rerank`` with ``{model, query, documents,
  top_n (may be null), return_documents: true}``; reads ``results[].index/relevance_score/document``
  (a string or ``{text}``). Dify's TEI provider: ``<server_url>/rerank`` with ``{query, texts,
  return_text: true}``; reads a bare list ``[{index, text, score}]``.
- RAGFlow: "OpenAI-API-Compatible" joins ``/rerank`` onto the host (the path of the base URL is
  dropped); Xinference posts ``<host>/v1/rerank`` unless the base URL already holds ``/v1`` and
  ``/rerank``, with ``return_documents: "true"`` (a string), ``return_len`` and no ``top_n``;
  SILICONFLOW posts its base URL as is and adds ``max_chunks_per_doc``/``overlap_tokens``; GPUStack
  posts ``<base>/v1/rerank``; the HuggingFace (TEI) class posts ``http://<host:port>/rerank`` in
  batches of 8 texts. Xinference and SILICONFLOW read ``meta.tokens.input_tokens + output_tokens``.
- open-webui's external reranker posts the configured URL with ``{model, query, documents, top_n:
  len(documents)}``, sorts ``results`` by index and zips the scores with its documents; the newer one
  probes with that body first and switches to TEI's ``{query, texts, truncate: true}`` on a 422.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from rerankd_support.harness import Server

from tests.clients.conftest import API_KEY, DOCUMENTS, MODEL, QUERY, WASHINGTON, Reference, assert_ranking

pytestmark = pytest.mark.clients

# Twelve documents: more than the seed format's default top_n (10).
MORE_DOCUMENTS = (
    *DOCUMENTS,
    "Sacramento is the capital of the state of California.",
    "Ottawa is the capital city of Canada.",
    "The United States has fifty states and a federal district.",
    "Venture capital funds invest in young companies.",
    "Albany is the capital of the state of New York.",
    "Canberra was chosen as the capital of Australia in 1908.",
    "A capital letter is also called an uppercase letter.",
)
BEARER = {"Authorization": f"Bearer {API_KEY}"}


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=body, headers={**BEARER, **(headers or {})}, timeout=60)


def scores_by_index(results: list[dict[str, Any]], key: str = "relevance_score") -> dict[int, float]:
    """What RAGFlow and open-webui build: each document's score, found by ``index``."""
    return {int(r["index"]): float(r[key]) for r in results}


def assert_one_per_document(scores: dict[int, float], count: int) -> None:
    assert sorted(scores) == list(range(count)), scores
    assert max(scores, key=scores.__getitem__) == WASHINGTON, scores
    assert all(0.0 <= s <= 1.0 for s in scores.values()), scores


def as_results(results: list[dict[str, Any]], score_key: str, document_key: str) -> list[dict[str, Any]]:
    """Dify's reading of a result: the document is a string or ``{text}``."""
    rows = []
    for r in results:
        document = r.get(document_key)
        rows.append(
            {
                "index": r["index"],
                "score": r[score_key],
                "document": document.get("text") if isinstance(document, dict) else document,
            }
        )
    return rows


@pytest.mark.parametrize("top_n", [None, 5, 10], ids=["top_n-null", "top_n-all", "top_n-larger"])
def test_dify_openai_api_compatible(rerankd_server: Server, reference: Reference, top_n: int | None) -> None:
    endpoint_url = f"{rerankd_server.url}/v1"
    body = {
        "model": "BAAI/bge-reranker-v2-m3",
        "query": QUERY,
        "documents": list(DOCUMENTS),
        "top_n": top_n,
        "return_documents": True,
    }
    response = post(f"{endpoint_url}/rerank", body)
    assert response.status_code == 200, response.text
    results = as_results(response.json()["results"], "relevance_score", "document")
    assert_ranking(results, reference, count=len(DOCUMENTS))


def test_dify_tei(rerankd_server: Server, reference: Reference) -> None:
    body = {"query": QUERY, "texts": list(DOCUMENTS), "return_text": True}
    response = post(f"{rerankd_server.url}/rerank", body)
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list), response.json()
    assert_ranking(as_results(response.json(), "score", "text"), reference, count=len(DOCUMENTS))


def test_ragflow_openai_api_compatible(rerankd_server: Server) -> None:
    url = urljoin(f"{rerankd_server.url}/v1", "/rerank")  # RAGFlow's join: the path is dropped
    assert url == f"{rerankd_server.url}/rerank"
    body = {"model": MODEL, "query": QUERY, "documents": list(MORE_DOCUMENTS), "top_n": len(MORE_DOCUMENTS)}
    response = post(url, body)
    assert response.status_code == 200, response.text
    assert_one_per_document(scores_by_index(response.json()["results"]), len(MORE_DOCUMENTS))


def xinference_body() -> dict[str, Any]:
    return {
        "model": "BAAI/bge-reranker-base",
        "query": QUERY,
        "return_documents": "true",
        "return_len": "true",
        "documents": list(MORE_DOCUMENTS),
    }


def assert_meta_tokens(answer: dict[str, Any]) -> None:
    tokens = answer["meta"]["tokens"]
    assert tokens["input_tokens"] + tokens["output_tokens"] > 0, answer["meta"]


def test_ragflow_xinference_on_cohere_path(rerankd_server: Server) -> None:
    # A base URL holding "/v1" and "/rerank" is used as is.
    response = post(f"{rerankd_server.url}/cohere/v1/rerank", xinference_body())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert_one_per_document(scores_by_index(answer["results"]), len(MORE_DOCUMENTS))
    assert all(r["document"]["text"] == MORE_DOCUMENTS[r["index"]] for r in answer["results"])
    assert_meta_tokens(answer)


def test_ragflow_xinference_on_default_url(rerankd_server: Server) -> None:
    response = post(urljoin(rerankd_server.url, "/v1/rerank"), xinference_body())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert_one_per_document(scores_by_index(answer["results"]), len(MORE_DOCUMENTS))
    assert_meta_tokens(answer)


def test_ragflow_siliconflow_on_cohere_path(rerankd_server: Server) -> None:
    body = {
        "model": "BAAI/bge-reranker-v2-m3",
        "query": QUERY,
        "documents": list(MORE_DOCUMENTS),
        "top_n": len(MORE_DOCUMENTS),
        "return_documents": False,
        "max_chunks_per_doc": 1024,
        "overlap_tokens": 80,
    }
    response = post(f"{rerankd_server.url}/cohere/v1/rerank", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert_one_per_document(scores_by_index(answer["results"]), len(MORE_DOCUMENTS))
    assert all("document" not in r for r in answer["results"])
    assert_meta_tokens(answer)


def test_ragflow_gpustack(rerankd_server: Server) -> None:
    body = {"model": MODEL, "query": QUERY, "documents": list(MORE_DOCUMENTS), "top_n": len(MORE_DOCUMENTS)}
    response = post(f"{rerankd_server.url}/v1/rerank", body)
    assert response.status_code == 200, response.text
    assert_one_per_document(scores_by_index(response.json()["results"]), len(MORE_DOCUMENTS))


def test_ragflow_huggingface_tei(rerankd_server: Server) -> None:
    host = rerankd_server.url.removeprefix("http://")  # RAGFlow's setting is host:port
    scores: dict[int, float] = {}
    for start in range(0, len(MORE_DOCUMENTS), 8):
        batch = list(MORE_DOCUMENTS[start : start + 8])
        body = {"query": QUERY, "texts": batch, "raw_scores": False, "truncate": True}
        response = post(f"http://{host}/rerank", body)
        assert response.status_code == 200, response.text
        ranks = response.json()
        assert len(ranks) == len(batch), ranks
        scores.update({int(r["index"]) + start: float(r["score"]) for r in ranks})
    assert_one_per_document(scores, len(MORE_DOCUMENTS))


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank", "/cohere/v1/rerank", "/jina/v1/rerank"])
def test_open_webui_external_reranker(rerankd_server: Server, path: str) -> None:
    body = {
        "model": "reranker",
        "query": QUERY,
        "documents": list(MORE_DOCUMENTS),
        "top_n": len(MORE_DOCUMENTS),
    }
    response = post(rerankd_server.url + path, body)
    assert response.status_code == 200, response.text
    results = sorted(response.json()["results"], key=lambda r: r["index"])
    scores = [r["relevance_score"] for r in results]  # zipped with the documents, in order
    assert len(scores) == len(MORE_DOCUMENTS)
    assert_one_per_document(scores_by_index(results), len(MORE_DOCUMENTS))


def test_open_webui_external_reranker_falls_back_to_tei(rerankd_server: Server) -> None:
    url = f"{rerankd_server.url}/tei/rerank"
    probe = {"model": "reranker", "query": QUERY, "documents": list(DOCUMENTS), "top_n": len(DOCUMENTS)}
    assert post(url, probe).status_code == 422  # the signal to switch to TEI's body
    response = post(url, {"query": QUERY, "texts": list(MORE_DOCUMENTS), "truncate": True})
    assert response.status_code == 200, response.text
    assert_one_per_document(scores_by_index(response.json(), key="score"), len(MORE_DOCUMENTS))
