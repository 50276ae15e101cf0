"""Every dialect in-process: request tolerance, response shape, usage, error shape, and routing."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from rerankd.api.app import create_app
from rerankd.config import ConfigError, load_settings

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
    "Capitalization in English grammar is the use of a capital letter at the start of a word.",
]
LONG = " ".join(f"filler{i}" for i in range(400)) + " Washington is the capital of the United States"


def make_client(tmp_path: Path, tiny_bert: Path, **settings: Any) -> TestClient:
    config = {
        "models": [
            {"name": "tiny", "kind": "cross-encoder", "source": str(tiny_bert), "max_length": 64},
            {"name": "bm25", "kind": "bm25"},
        ],
        **settings,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return TestClient(create_app(load_settings(path)))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Iterator[TestClient]:
    with make_client(tmp_path_factory.mktemp("dialects"), tiny_bert) as test_client:
        yield test_client


def post(client: TestClient, path: str, body: Any, status: int = 200) -> Any:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def assert_ranked(results: list[dict[str, Any]], score_key: str = "relevance_score") -> None:
    scores = [r[score_key] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert len({r["index"] for r in results}) == len(results)


# -- Cohere ---------------------------------------------------------------------------------------


def test_cohere_v2_shape_units_and_no_documents(client: TestClient) -> None:
    for path in ("/v2/rerank", "/cohere/v2/rerank"):
        data = post(client, path, {"model": "tiny", "query": QUERY, "documents": DOCUMENTS, "top_n": 2})
        assert set(data) == {"id", "results", "meta"}
        assert len(data["results"]) == 2 and all(
            set(r) == {"index", "relevance_score"} for r in data["results"]
        )
        assert_ranked(data["results"])
        assert data["meta"]["api_version"] == {"version": "2"}
        assert data["meta"]["billed_units"] == {"search_units": 1}
        assert data["meta"]["tokens"]["input_tokens"] > 0


def test_cohere_v2_max_tokens_per_doc_null_and_top_n_larger_than_list(client: TestClient) -> None:
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS, "top_n": 10, "max_tokens_per_doc": None}
    assert len(post(client, "/v2/rerank", body)["results"]) == 3


def test_cohere_v2_counts_chunks_as_documents_for_search_units(client: TestClient) -> None:
    body = {"model": "tiny", "query": QUERY, "documents": [LONG] * 30}
    data = post(client, "/cohere/v2/rerank", body)
    assert data["meta"]["billed_units"]["search_units"] >= 2  # 30 documents of several windows each


def test_cohere_v1_objects_rank_fields_and_echo(client: TestClient) -> None:
    documents = [
        {"title": "Nevada", "body": DOCUMENTS[0], "id": "a"},
        {"title": "Capital", "body": DOCUMENTS[1], "id": "b"},
    ]
    body = {"model": "bm25", "query": QUERY, "documents": documents, "rank_fields": ["title", "body"]}
    data = post(client, "/cohere/v1/rerank", {**body, "return_documents": True})
    assert data["results"][0]["document"] == documents[1]  # the original object comes back
    assert data["meta"]["api_version"] == {"version": "1"}
    plain = post(client, "/cohere/v1/rerank", body)
    assert all("document" not in r for r in plain["results"])  # return_documents defaults to false
    text_docs = post(
        client,
        "/cohere/v1/rerank",
        {"query": QUERY, "documents": [{"text": d} for d in DOCUMENTS], "return_documents": "true"},
    )
    assert (
        text_docs["results"][0]["document"] == {"text": DOCUMENTS[1]} or "document" in text_docs["results"][0]
    )


def test_cohere_errors_are_message_objects(client: TestClient) -> None:
    data = post(client, "/v2/rerank", {"model": "nope", "query": QUERY, "documents": DOCUMENTS}, status=404)
    assert set(data) == {"message"} and "available models" in data["message"]
    bad = post(client, "/cohere/v1/rerank", {"query": QUERY, "documents": [{"title": "x"}]}, status=422)
    assert "rank_fields" in bad["message"]


# -- Jina, Voyage ---------------------------------------------------------------------------------


def test_jina_shape_with_text_objects(client: TestClient) -> None:
    body = {"model": "tiny", "query": QUERY, "documents": [{"text": d} for d in DOCUMENTS], "top_n": None}
    data = post(client, "/jina/v1/rerank", body)
    assert set(data) == {"model", "usage", "results"}
    assert set(data["usage"]) == {"total_tokens"} and data["usage"]["total_tokens"] > 0
    assert all(r["document"] == {"text": DOCUMENTS[r["index"]]} for r in data["results"])
    assert len(data["results"]) == 3


def test_jina_errors_are_detail(client: TestClient) -> None:
    data = post(
        client, "/jina/v1/rerank", {"model": "nope", "query": QUERY, "documents": DOCUMENTS}, status=404
    )
    assert set(data) == {"detail"}


def test_voyage_shape_top_k_and_string_documents(client: TestClient) -> None:
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS, "top_k": None, "truncation": True}
    data = post(client, "/voyage/v1/rerank", body)
    assert data["object"] == "list" and data["model"] == "tiny" and data["usage"]["total_tokens"] > 0
    assert len(data["data"]) == 3 and all("document" not in r for r in data["data"])
    assert_ranked(data["data"])
    echoed = post(client, "/voyage/v1/rerank", {**body, "top_k": 1, "return_documents": True})
    assert echoed["data"][0]["document"] == DOCUMENTS[echoed["data"][0]["index"]]


def test_voyage_truncation_false_refuses_long_documents(client: TestClient) -> None:
    body = {"model": "tiny", "query": QUERY, "documents": [LONG], "truncation": False}
    data = post(client, "/voyage/v1/rerank", body, status=422)
    assert "document 0 has" in data["detail"]


# -- TEI --------------------------------------------------------------------------------------------


def test_tei_bare_list_with_score_and_text(client: TestClient) -> None:
    for path in ("/rerank", "/tei/rerank"):
        response = client.post(path, json={"query": QUERY, "texts": DOCUMENTS, "return_text": True})
        assert response.status_code == 200, response.text
        ranks = response.json()
        assert isinstance(ranks, list) and len(ranks) == 3
        assert_ranked(ranks, "score")
        assert all(r["text"] == DOCUMENTS[r["index"]] for r in ranks)
        assert int(response.headers["x-compute-tokens"]) > 0


def test_tei_raw_scores_and_truncate(client: TestClient) -> None:
    plain = {r["index"]: r["score"] for r in post(client, "/rerank", {"query": QUERY, "texts": DOCUMENTS})}
    raw = {
        r["index"]: r["score"]
        for r in post(client, "/rerank", {"query": QUERY, "texts": DOCUMENTS, "raw_scores": True})
    }
    for index, score in raw.items():
        assert plain[index] == pytest.approx(1 / (1 + math.exp(-score)), abs=1e-6)
    for direction in ("Right", "Left"):
        body = {"query": QUERY, "texts": [LONG], "truncate": True, "truncation_direction": direction}
        assert len(post(client, "/tei/rerank", body)) == 1


def test_tei_honours_top_n_and_top_k_when_sent(client: TestClient) -> None:
    """litellm's huggingface/ provider sends top_n to /rerank; plain TEI clients send neither."""
    every = post(client, "/rerank", {"query": QUERY, "texts": DOCUMENTS})
    assert len(every) == 3
    for field in ("top_n", "top_k"):
        for path in ("/rerank", "/tei/rerank"):
            best = post(client, path, {"query": QUERY, "texts": DOCUMENTS, field: 2})
            assert [r["index"] for r in best] == [r["index"] for r in every[:2]]
    assert len(post(client, "/rerank", {"query": QUERY, "texts": DOCUMENTS, "top_n": 0})) == 3


def test_tei_errors_and_info(client: TestClient) -> None:
    data = post(client, "/rerank", {"query": "", "texts": DOCUMENTS}, status=422)
    assert set(data) == {"error", "error_type"} and data["error_type"] == "Validation"
    for path in ("/info", "/tei/info"):
        info = client.get(path).json()
        assert "reranker" in info["model_type"] and info["model_id"] == "tiny"
        assert info["max_batch_tokens"] == 4096  # the loaded model's budget on this CPU


# -- Infinity, vLLM ---------------------------------------------------------------------------------


def test_infinity_shape_string_documents_and_usage(client: TestClient) -> None:
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS, "return_documents": True}
    data = post(client, "/infinity/rerank", body)
    assert data["object"] == "rerank" and data["id"] and isinstance(data["created"], int)
    assert data["usage"]["prompt_tokens"] == data["usage"]["total_tokens"] > 0
    assert all(r["document"] == DOCUMENTS[r["index"]] for r in data["results"])


def test_vllm_paths_and_text_documents(client: TestClient) -> None:
    for path in ("/rerank", "/vllm/rerank", "/vllm/v1/rerank", "/vllm/v2/rerank"):
        data = post(client, path, {"model": "tiny", "query": QUERY, "documents": DOCUMENTS, "top_n": 0})
        assert data["id"].startswith("rerank-") and data["usage"]["total_tokens"] > 0
        assert all(r["document"] == {"text": DOCUMENTS[r["index"]]} for r in data["results"])
        assert len(data["results"]) == 3
    cut = post(client, "/vllm/rerank", {"query": QUERY, "documents": [LONG], "truncate_prompt_tokens": 5})
    assert cut["model"] == "tiny"  # no model: the server's default


def test_vllm_errors_are_openai_style(client: TestClient) -> None:
    data = post(client, "/vllm/rerank", {"model": "nope", "query": QUERY, "documents": DOCUMENTS}, status=404)
    assert data["error"]["code"] == 404


def test_bare_rerank_garbage_is_4xx(client: TestClient) -> None:
    response = client.post("/rerank", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert post(client, "/rerank", [1, 2], status=422)["error"]["code"] == 422


# -- tolerance shared by all dialects --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/rerank", {"model": "tiny", "top_n": None}),
        ("/cohere/v1/rerank", {"model": "tiny", "top_n": 50}),
        ("/v2/rerank", {"model": "tiny", "top_n": 0}),
        ("/jina/v1/rerank", {"model": "tiny", "top_n": 3}),
        ("/voyage/v1/rerank", {"model": "tiny", "top_k": 0}),
        ("/infinity/rerank", {"model": "tiny", "top_n": None}),
        ("/vllm/rerank", {"model": "tiny"}),
    ],
)
def test_all_documents_and_unknown_fields_accepted(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    data = post(client, path, {**body, "query": QUERY, "documents": DOCUMENTS, "some_new_field": {"x": 1}})
    results = data.get("results", data.get("data"))
    assert len(results) == 3
    assert all(r.get("document", "absent") is not None for r in results)  # omitted, never null


def test_v1_dialect_setting_picks_the_bare_v1_format(tmp_path: Path, tiny_bert: Path) -> None:
    with make_client(tmp_path, tiny_bert, v1_dialect="jina") as jina_client:
        data = post(jina_client, "/v1/rerank", {"model": "tiny", "query": QUERY, "documents": DOCUMENTS})
        assert set(data) == {"model", "usage", "results"} and "document" in data["results"][0]
        seed = post(jina_client, "/seed/v1/rerank", {"model": "tiny", "query": QUERY, "documents": DOCUMENTS})
        assert "metadata" in seed


def test_unknown_v1_dialect_stops_the_server_listing_the_others(tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match="v1_dialect 'soap' is not a dialect; choose one of seed, cohere"):
        make_client(tmp_path, tiny_bert, v1_dialect="soap")


@pytest.mark.parametrize(
    ("path", "meant", "base", "shape"),
    [
        ("/cohere/v1/v1/rerank", "/cohere/v1/rerank", "/cohere", "message"),
        ("/v1/v1/rerank", "/v1/rerank", "", "error"),
        ("/jina/v1/v1/rerank", "/jina/v1/rerank", "/jina", "detail"),
        ("/cohere/v2/v2/rerank", "/cohere/v2/rerank", "/cohere", "message"),
    ],
)
def test_a_doubled_version_gets_the_path_meant_and_the_base_url_to_set(
    client: TestClient, path: str, meant: str, base: str, shape: str
) -> None:
    """A client whose base URL already ends in /v1 posts to .../v1/v1/rerank."""
    response = client.post(path, json={"model": "tiny", "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 404
    data = response.json()
    assert shape in data  # in the shape of the dialect the client speaks
    message = str(data[shape] if shape != "error" else data["error"]["message"])
    assert f"did you mean {meant}?" in message
    assert f"set the base URL to http://testserver{base} instead" in message


def test_an_unknown_path_is_a_plain_404(client: TestClient) -> None:
    response = client.post("/v9/nothing", json={})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no route POST /v9/nothing; see /docs for the API"


def test_openapi_documents_every_dialect(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/rerank",
        "/v2/rerank",
        "/rerank",
        "/info",
        "/seed/v1/rerank",
        "/cohere/v1/rerank",
        "/cohere/v2/rerank",
        "/jina/v1/rerank",
        "/voyage/v1/rerank",
        "/tei/rerank",
        "/tei/info",
        "/infinity/rerank",
        "/vllm/rerank",
        "/vllm/v1/rerank",
        "/vllm/v2/rerank",
    ):
        assert path in paths, path


def test_bare_v1_recognises_cohere_and_voyage_clients(client: TestClient) -> None:
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS}
    cohere_sdk = client.post(
        "/v1/rerank", json={**body, "return_documents": True}, headers={"X-Fern-SDK-Name": "cohere"}
    ).json()
    assert cohere_sdk["results"][0]["document"] == {"text": DOCUMENTS[cohere_sdk["results"][0]["index"]]}
    xinference = post(client, "/v1/rerank", {**body, "return_documents": "true", "return_len": "true"})
    assert "meta" in xinference and len(xinference["results"]) == 3
    voyage = post(client, "/v1/rerank", {**body, "top_k": None, "truncation": True})
    assert voyage["object"] == "list" and len(voyage["data"]) == 3
    seed = post(client, "/v1/rerank", body)
    assert "metadata" in seed and isinstance(seed["results"][0]["document"], str)
    error = post(client, "/v1/rerank", {**body, "model": "nope"}, status=404)
    assert "error" in error
    cohere_error = client.post(
        "/v1/rerank", json={**body, "model": "nope"}, headers={"X-Fern-SDK-Name": "cohere"}
    )
    assert set(cohere_error.json()) == {"message"}
