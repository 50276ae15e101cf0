"""Strings a client chooses are bounded before they reach logs, metrics and the ledger: a long or garbled
model name and a NUL anywhere are a 400 naming the field (on SQLite and PostgreSQL, through a real server
with a managed key), made-up model names do not grow /metrics, unknown fields are logged boundedly."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from rerankd_support.harness import Server

from rerankd.api.app import create_app
from rerankd.api.bounds import MAX_MODEL_CHARS, UnknownFields
from rerankd.config import load_settings

ADMIN = "adm-bounds-1"
MODELS = [{"name": "bm25", "kind": "bm25", "aliases": ["okapi"], "price": {"per_request": "0.01"}}]
QUERY = "What is the capital of France?"
DOCUMENTS = ["Paris is the capital of France.", "Cats purr."]


def rerank_body(**changes: Any) -> dict[str, Any]:
    return {"model": "bm25", "query": QUERY, "documents": DOCUMENTS, **changes}


# (path, body, the field the 400 names)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/rerank", rerank_body(model="m" * (MAX_MODEL_CHARS + 1)), "129 characters"),
    ("/v1/rerank", rerank_body(model="m" * 400_000), "400000 characters"),
    ("/v1/rerank", rerank_body(model="bm25\x01"), "control character"),
    ("/v1/rerank", rerank_body(model="bm25\n"), "control character"),
    ("/v1/rerank", rerank_body(model="bm25\x00"), "`model`"),
    ("/v1/rerank", rerank_body(query="capital\x00"), "`query`"),
    ("/v1/rerank", rerank_body(documents=["fine", "bad\x00"]), "`documents.1`"),
    ("/v1/rerank", rerank_body(instruction="\x00"), "`instruction`"),
    ("/v1/rerank", rerank_body(user="someone\x00"), "`user`"),
    ("/v1/rerank", rerank_body(metadata={"tags": ["a", "b\x00"]}), "`metadata.tags.1`"),
    ("/v1/rerank", rerank_body(**{"odd\x00name": 1}), "field name"),
    ("/cohere/v1/rerank", rerank_body(documents=[{"text": "a", "title": "t\x00"}]), "`documents.0.title`"),
    ("/jina/v1/rerank", rerank_body(model="j" * 300), "300 characters"),
    ("/tei/rerank", {"query": QUERY, "texts": ["a\x00"]}, "`texts.0`"),
]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_long_or_garbled_names_and_nul_bytes_are_a_400_before_the_ledger(
    start_server: Callable[..., Server], tmp_path: Path, request: pytest.FixtureRequest, database: str
) -> None:
    url = f"sqlite:///{tmp_path / 'bounds.db'}"
    if database == "postgresql":
        url = request.getfixturevalue("postgres_url")
    server = start_server({"models": MODELS, "admin_keys": [ADMIN]}, env={"RERANKD_DATABASE_URL": url})
    admin = {"Authorization": f"Bearer {ADMIN}"}
    created = httpx.post(f"{server.url}/admin/keys", json={"name": "client", "budget": 10}, headers=admin)
    assert created.status_code == 201, created.text
    key = {"Authorization": f"Bearer {created.json()['key']}"}
    for path, body, named in REFUSED:
        response = httpx.post(f"{server.url}{path}", json=body, headers=key, timeout=30)
        assert response.status_code == 400, (path, str(body)[:100], response.text[:300])
        assert named in response.text, (path, named, response.text[:300])
        assert len(response.content) < 1000  # the message quotes no client string in full
    # A name within the bound that no model has is an ordinary 404, recorded as such, never a 500.
    unknown = "u" * MAX_MODEL_CHARS
    assert (
        httpx.post(f"{server.url}/v1/rerank", json=rerank_body(model=unknown), headers=key).status_code == 404
    )
    assert (
        httpx.post(f"{server.url}/v1/rerank", json=rerank_body(model="okapi"), headers=key).status_code == 200
    )
    usage = httpx.get(f"{server.url}/admin/usage", params={"by": "model"}, headers=admin).json()
    # The 400s were refused before admission: no ledger row, nothing held or charged.
    assert {group["group"]: group["calls"] for group in usage["groups"]} == {unknown: 1, "bm25": 1}
    assert "Traceback" not in server.log()


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_made_up_model_names_do_not_grow_the_metrics(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, {"models": MODELS}))
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/rerank", json=rerank_body(model="okapi")).status_code == 200
        assert client.post("/v1/rerank", json=rerank_body(model="nope")).status_code == 404
        before = len(client.get("/metrics").content)
        names = [secrets.token_hex(MAX_MODEL_CHARS // 2) for _ in range(300)]
        for name in names:
            assert client.post("/v1/rerank", json=rerank_body(model=name)).status_code == 404
        scrape = client.get("/metrics").text
    assert len(scrape.encode()) - before < 200  # counts change, label sets do not
    assert 'rerankd_requests_total{model="unknown",status="404"} 301.0' in scrape
    assert 'model="okapi"' in scrape  # configured names and aliases keep their own labels
    assert not any(name in scrape for name in names)


def test_unknown_fields_are_logged_once_per_name_and_boundedly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(write_config(tmp_path, {"models": MODELS}))
    fields = {f"field_{number}": number for number in range(150_000)}
    with TestClient(create_app(settings)) as client, caplog.at_level(logging.WARNING, "rerankd.api.bounds"):
        for _ in range(3):
            assert client.post("/v1/rerank", json=rerank_body(**fields)).status_code == 200
        huge = "h" * 100_000
        assert client.post("/v1/rerank", json=rerank_body(**{huge: 1})).status_code == 200
        assert client.post("/v1/rerank", json=rerank_body(**{huge: 1})).status_code == 200
        unknown: UnknownFields = client.app.state.unknown_fields  # type: ignore[attr-defined]
    lines = [record.getMessage() for record in caplog.records if record.name == "rerankd.api.bounds"]
    assert len(lines) == 4, lines  # 5 names, 5 more, 5 more, the huge one once
    assert all(len(line) < 1000 for line in lines)
    assert "100000 characters" in lines[-1]
    assert len(unknown._seen) == 16


def test_unknown_field_names_are_remembered_up_to_a_bound(caplog: pytest.LogCaptureFixture) -> None:
    unknown = UnknownFields(capacity=10, per_request=3)
    with caplog.at_level(logging.WARNING, "rerankd.api.bounds"):
        for start in range(0, 100, 3):
            unknown.report("seed", [f"f{number}" for number in range(start, start + 3)])
        unknown.report("seed", ["f0"])
    assert len(unknown._seen) == 10
    assert len(caplog.records) == 5  # 3 + 3 + 3 + 1 names, then one line that no more will be
    assert "no more will be" in caplog.records[-1].getMessage()
