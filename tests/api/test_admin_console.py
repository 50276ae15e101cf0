"""What the console reads that the admin API added for it: when each key last made a call
(``GET /admin/keys``) and each model's state, price, breaker and recent calls (``GET /admin/models``),
in-process on the test's own SQLite file, each answer checked against the server's OpenAPI schema."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from fastapi.testclient import TestClient

from rerankd.api.app import create_app
from rerankd.config import load_settings

ADMIN = {"Authorization": "Bearer adm-console-1"}
QUERY = "What is the capital of the United States?"
DOCUMENTS = ["Carson City is in Nevada.", "Washington, D.C. is the capital of the United States."]
CONFIG: dict[str, Any] = {
    "admin_keys": ["adm-console-1"],
    "models": [
        {"name": "bm25", "kind": "bm25", "preload": True, "price": {"per_request": "0.03"}},
        {"name": "free", "kind": "bm25", "aliases": ["gratis"]},
    ],
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    with TestClient(create_app(load_settings(path))) as test_client:
        yield test_client


def valid(client: TestClient, path: str, body: Any) -> Any:
    """``body`` if it matches the 200 answer of GET ``path`` in the server's own OpenAPI document."""
    document = client.get("/openapi.json").json()
    schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(body)
    return body


def new_key(client: TestClient, name: str) -> dict[str, Any]:
    response = client.post("/admin/keys", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def rerank(client: TestClient, key: str, model: str) -> int:
    body = {"model": model, "query": QUERY, "documents": DOCUMENTS}
    return client.post("/v1/rerank", json=body, headers={"Authorization": f"Bearer {key}"}).status_code


def test_the_key_list_says_when_each_key_last_made_a_call(client: TestClient) -> None:
    used, unused = new_key(client, "used"), new_key(client, "unused")
    before = dt.datetime.now(dt.UTC)
    assert rerank(client, used["key"], "bm25") == 200
    assert rerank(client, used["key"], "nothing-of-that-name") == 404  # refused calls count as use too

    listed = valid(client, "/admin/keys", client.get("/admin/keys", headers=ADMIN).json())["data"]
    by_name = {key["name"]: key for key in listed}
    assert by_name["unused"]["last_used_at"] is None
    last = dt.datetime.fromisoformat(by_name["used"]["last_used_at"])
    assert before - dt.timedelta(seconds=1) <= last <= dt.datetime.now(dt.UTC)
    newest = client.get("/admin/usage?format=csv", headers=ADMIN).text.strip().splitlines()[-1]
    assert dt.datetime.fromisoformat(newest.split(",")[0]) == last  # the key's newest ledger row
    assert unused["id"] == by_name["unused"]["id"]


def test_each_model_with_its_state_price_and_recent_calls(client: TestClient) -> None:
    key = new_key(client, "caller")["key"]
    for _ in range(3):
        assert rerank(client, key, "bm25") == 200
    assert rerank(client, key, "gratis") == 200  # counted under the model, not its alias

    answer = client.get("/admin/models", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = valid(client, "/admin/models", answer.json())
    assert body["minutes"] == 60
    models = {model["id"]: model for model in body["data"]}
    assert list(models) == ["bm25", "free"]
    bm25, free = models["bm25"], models["free"]
    assert (bm25["kind"], bm25["status"], bm25["aliases"], bm25["circuit"]) == ("bm25", "ready", [], None)
    assert bm25["price"] == {"per_million_tokens": "0", "per_search_unit": "0", "per_request": "0.03"}
    assert free["price"] is None and free["aliases"] == ["gratis"]
    recent = bm25["recent"]
    assert (recent["calls"], recent["failures"], recent["failure_rate"]) == (3, 0, 0.0)
    assert 0 < recent["mean_ms"] <= recent["max_ms"]
    assert free["recent"]["calls"] == 1
    # the same calls the ledger has for the model over the period
    usage = client.get("/admin/usage?model=bm25&since=60m", headers=ADMIN).json()
    assert usage["total"]["calls"] == 3

    older = client.get("/admin/models?minutes=1", headers=ADMIN).json()
    assert older["minutes"] == 1
    assert client.get("/admin/models?minutes=0", headers=ADMIN).status_code == 422
    assert client.get("/admin/models", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_without_a_database_the_models_have_no_recent_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANKD_DATABASE_URL", "none")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    with TestClient(create_app(load_settings(path))) as client:
        body = client.get("/admin/models", headers=ADMIN).json()
        assert [model["recent"] for model in body["data"]] == [None, None]
        assert client.get("/admin/keys", headers=ADMIN).status_code == 503
