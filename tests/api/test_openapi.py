"""What is sent is what ``/openapi.json`` promises: real requests in every dialect, on every rerank path,
each answer (and each error) validated against that route's schema in the server's own document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from fastapi.testclient import TestClient

from rerankd.api import DIALECTS
from rerankd.api.app import create_app
from rerankd.config import load_settings

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
]

# One request per dialect, asking for every optional part of the answer (documents, usage).
BODIES: dict[str, dict[str, Any]] = {
    "seed": {"model": "bm25", "query": QUERY, "documents": DOCUMENTS, "top_n": 2},
    "cohere": {
        "model": "bm25",
        "query": QUERY,
        "documents": [{"text": DOCUMENTS[0], "id": 7, "note": None}, DOCUMENTS[1]],
        "return_documents": True,
    },
    "cohere-v2": {"model": "bm25", "query": QUERY, "documents": DOCUMENTS, "return_documents": True},
    "jina": {"model": "bm25", "query": QUERY, "documents": DOCUMENTS, "top_n": 1},
    "voyage": {"model": "bm25", "query": QUERY, "documents": DOCUMENTS, "return_documents": True},
    "tei": {"query": QUERY, "texts": DOCUMENTS, "return_text": True},
    "infinity": {"model": "bm25", "query": QUERY, "documents": DOCUMENTS, "return_documents": True},
    "vllm": {"model": "bm25", "query": QUERY, "documents": DOCUMENTS},
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path = tmp_path_factory.mktemp("openapi") / "config.yaml"
    path.write_text(yaml.safe_dump({"models": [{"name": "bm25", "kind": "bm25"}]}), encoding="utf-8")
    with TestClient(create_app(load_settings(path))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def check(openapi: dict[str, Any], path: str, status: int, body: Any) -> None:
    """Validate ``body`` against what the document says ``POST path`` answers with ``status``."""
    operation = openapi["paths"][path]["post"]
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    # The document's components are the root the schema's $refs point into.
    root = {**schema, "components": openapi["components"]}
    jsonschema.Draft202012Validator(root).validate(body)


def rerank_paths() -> list[tuple[str, str]]:
    """Every prefixed path of every registered dialect, and the bare paths with the dialect they speak."""
    pairs = [(name, path) for name, dialect in DIALECTS.items() for path in dialect.paths]
    return [
        *pairs,
        ("seed", "/v1/rerank"),
        ("cohere-v2", "/v2/rerank"),
        ("tei", "/rerank"),
        ("vllm", "/rerank"),
    ]


def test_every_dialect_has_a_request_here() -> None:
    assert set(BODIES) == set(DIALECTS)


@pytest.mark.parametrize(("dialect", "path"), rerank_paths(), ids=lambda value: str(value))
def test_answers_match_the_documented_schema(
    client: TestClient, openapi: dict[str, Any], dialect: str, path: str
) -> None:
    response = client.post(path, json=BODIES[dialect])
    assert response.status_code == 200, response.text
    check(openapi, path, 200, response.json())


@pytest.mark.parametrize(("dialect", "path"), rerank_paths(), ids=lambda value: str(value))
def test_errors_match_the_documented_schema(
    client: TestClient, openapi: dict[str, Any], dialect: str, path: str
) -> None:
    unknown_model = {**BODIES[dialect], "model": "no-such-model"}
    response = client.post(path, json=unknown_model)
    assert response.status_code == 404, response.text
    check(openapi, path, 404, response.json())
    invalid = {key: value for key, value in BODIES[dialect].items() if key != "query"}
    response = client.post(path, json=invalid)
    assert response.status_code == 422, response.text
    check(openapi, path, 422, response.json())


def test_sniffed_v1_answers_match_one_of_the_documented_formats(
    client: TestClient, openapi: dict[str, Any]
) -> None:
    for body in (BODIES["cohere"] | {"rank_fields": ["text"]}, BODIES["voyage"] | {"top_k": 1}):
        response = client.post("/v1/rerank", json=body)
        assert response.status_code == 200, response.text
        check(openapi, "/v1/rerank", 200, response.json())


def test_echoed_documents_keep_their_null_fields(client: TestClient) -> None:
    data = client.post("/cohere/v1/rerank", json=BODIES["cohere"]).json()
    echoed = next(r["document"] for r in data["results"] if r["index"] == 0)
    assert echoed == {"text": DOCUMENTS[0], "id": 7, "note": None}


def test_models_listing_matches_its_schema(client: TestClient, openapi: dict[str, Any]) -> None:
    schema = openapi["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]
    root = {**schema["schema"], "components": openapi["components"]}
    jsonschema.Draft202012Validator(root).validate(client.get("/v1/models").json())


def test_config_file_is_not_needed_for_the_schema(tmp_path: Path) -> None:
    """The document does not depend on which models are configured (clients generate code from it)."""
    path = tmp_path / "config.yaml"
    path.write_text("models: []\n", encoding="utf-8")
    bare = create_app(load_settings(path)).openapi()
    with_models = create_app(load_settings(None)).openapi()
    assert bare == with_models
