"""Tenants kept apart on a real ``rerankd serve`` with static, managed (model-limited) and admin keys and a
scraper's metrics key: what ``/v1/models``, ``/metrics``, TEI's ``/info`` and the 404/403 of a rerank call
tell each caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from rerankd_support.harness import Server, free_port

STATIC = "sk-static-tenants-0123456789"
ADMIN = "adm-tenants-0123456789"
SCRAPER = "scrape-tenants-0123456789"
UPSTREAM_URL = f"http://127.0.0.1:{free_port()}"  # never called here: only described
UPSTREAM_DETAILS = (UPSTREAM_URL, "127.0.0.1:", "REMOTE_KEY", "cohere")
QUERY = "capital of the United States"
DOCUMENTS = ["Carson City is in Nevada", "the capital of the United States"]


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> Server:
    # A database of its own: the keys made here must not close the session's other servers.
    database = tmp_path_factory.mktemp("tenants") / "rerankd.db"
    config = {
        "api_keys": [STATIC],
        "admin_keys": [ADMIN],
        "metrics_keys": [SCRAPER],
        "default_model": "bm25",
        "models": [
            {"name": "bm25", "kind": "bm25", "aliases": ["bm25-alias"]},
            {"name": "secret-project", "kind": "bm25", "aliases": ["secret-alias"]},
            {
                "name": "remote",
                "kind": "upstream",
                "provider": "cohere",
                "base_url": UPSTREAM_URL,
                "api_key_env": "REMOTE_KEY",
                "fallbacks": ["secret-project", "bm25"],
            },
        ],
    }
    return start_server(config, env={"RERANKD_DATABASE_URL": f"sqlite:///{database}"})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def managed_key(server: Server, models: list[str] | None) -> str:
    response = httpx.post(
        f"{server.url}/admin/keys",
        json={"name": "tenant", "models": models},
        headers=bearer(ADMIN),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def models_of(server: Server, key: str) -> tuple[dict[str, Any], str]:
    response = httpx.get(f"{server.url}/v1/models", headers=bearer(key), timeout=30)
    assert response.status_code == 200, response.text
    return {card["id"]: card for card in response.json()["data"]}, response.text


@pytest.mark.parametrize(
    ("allowed", "listed"),
    [
        (
            ["bm25-alias"],
            {"bm25": ["bm25-alias"]},
        ),  # an alias in the key's list opens every name of the model
        (["remote", "bm25"], {"bm25": ["bm25-alias"], "remote": []}),
        (["secret-alias"], {"secret-project": ["secret-alias"]}),
        ([], {}),
    ],
)
def test_a_limited_key_lists_exactly_its_models(
    server: Server, allowed: list[str], listed: dict[str, list[str]]
) -> None:
    cards, text = models_of(server, managed_key(server, allowed))
    assert {name: card.get("aliases", []) for name, card in cards.items()} == listed
    for detail in UPSTREAM_DETAILS:
        assert detail not in text
    for card in cards.values():
        assert not {"base_url", "api_key_env", "provider", "source", "circuit", "cache"} & set(card)
        # a fallback is named only when the key may use it too
        assert set(card.get("fallbacks", [])) <= set(listed)
    if "remote" in cards:
        assert cards["remote"]["fallbacks"] == ["bm25"] and cards["remote"]["kind"] == "upstream"


@pytest.mark.parametrize("key", ["static", "unlimited managed"])
def test_an_unlimited_client_key_lists_every_model_without_upstream_details(server: Server, key: str) -> None:
    cards, text = models_of(server, STATIC if key == "static" else managed_key(server, None))
    assert list(cards) == ["bm25", "secret-project", "remote"]
    assert cards["remote"]["fallbacks"] == ["secret-project", "bm25"]
    for detail in UPSTREAM_DETAILS:
        assert detail not in text


def test_an_admin_key_lists_every_model_with_its_settings(server: Server) -> None:
    cards, _ = models_of(server, ADMIN)
    assert list(cards) == ["bm25", "secret-project", "remote"]
    remote = cards["remote"]
    assert (remote["provider"], remote["base_url"], remote["api_key_env"]) == (
        "cohere",
        UPSTREAM_URL,
        "REMOTE_KEY",
    )


def test_metrics_are_for_admin_and_metrics_keys(server: Server) -> None:
    assert (
        httpx.post(
            f"{server.url}/v1/rerank",
            json={"model": "bm25", "query": QUERY, "documents": DOCUMENTS},
            headers=bearer(STATIC),
            timeout=30,
        ).status_code
        == 200
    )

    def scrape(headers: dict[str, str]) -> httpx.Response:
        return httpx.get(f"{server.url}/metrics", headers=headers, timeout=30)

    for key in (ADMIN, SCRAPER):
        response = scrape(bearer(key))
        assert response.status_code == 200 and "rerankd_requests_total" in response.text
    for key in (STATIC, managed_key(server, None), managed_key(server, ["bm25"])):
        refused = scrape(bearer(key))
        assert refused.status_code == 403, refused.text
        assert "metrics_keys" in refused.json()["error"]["message"]
    assert scrape({}).status_code == 401
    assert scrape(bearer("sk-not-a-key-0123456789")).status_code == 401


def test_a_metrics_key_opens_nothing_else(server: Server) -> None:
    body = {"model": "bm25", "query": QUERY, "documents": DOCUMENTS}
    refused = httpx.post(f"{server.url}/v1/rerank", json=body, headers=bearer(SCRAPER), timeout=30)
    assert refused.status_code == 401 and "metrics key" in refused.json()["error"]["message"]
    assert httpx.get(f"{server.url}/v1/models", headers=bearer(SCRAPER), timeout=30).status_code == 401
    assert httpx.get(f"{server.url}/admin/keys", headers=bearer(SCRAPER), timeout=30).status_code == 401


@pytest.mark.parametrize("path", ["/v1/rerank", "/cohere/v2/rerank"])
def test_refusals_name_only_the_models_the_key_may_use(server: Server, path: str) -> None:
    key = managed_key(server, ["bm25-alias"])

    def message(model: str) -> tuple[int, str]:
        body = {"model": model, "query": QUERY, "documents": DOCUMENTS}
        response = httpx.post(f"{server.url}{path}", json=body, headers=bearer(key), timeout=30)
        data = response.json()
        return response.status_code, str(data["message"] if "message" in data else data["error"]["message"])

    for model, status in (("no-such-model", 404), ("secret-alias", 403), ("remote", 403)):
        code, said = message(model)
        assert code == status, said
        assert "may use: bm25-alias" in said
        told = said.replace(f"'{model}'", "")  # what the message adds to the name the client sent
        assert "secret" not in told and "remote" not in told, said
    # a key that may use every model is told of every model
    unknown = httpx.post(
        f"{server.url}{path}",
        json={"model": "no-such-model", "query": QUERY, "documents": DOCUMENTS},
        headers=bearer(STATIC),
        timeout=30,
    )
    assert unknown.status_code == 404 and "secret-project" in unknown.text


def test_tei_info_describes_the_default_model_only_to_who_may_use_it(server: Server) -> None:
    def info(key: str) -> httpx.Response:
        return httpx.get(f"{server.url}/info", headers=bearer(key), timeout=30)

    for key in (ADMIN, STATIC, managed_key(server, ["bm25"])):
        response = info(key)
        assert response.status_code == 200 and response.json()["model_id"] == "bm25", response.text
    refused = info(managed_key(server, ["secret-project"]))
    assert refused.status_code == 403 and "may use: secret-project" in refused.text


def test_metrics_open_only_without_keys(
    start_server: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory
) -> None:
    models = [{"name": "bm25", "kind": "bm25"}]
    database = tmp_path_factory.mktemp("scraper-only") / "rerankd.db"
    scraped = start_server(
        {"metrics_keys": [SCRAPER], "models": models}, env={"RERANKD_DATABASE_URL": f"sqlite:///{database}"}
    )
    assert httpx.get(f"{scraped.url}/metrics", timeout=30).status_code == 401
    assert httpx.get(f"{scraped.url}/metrics", headers=bearer(SCRAPER), timeout=30).status_code == 200
    database = tmp_path_factory.mktemp("keyless") / "rerankd.db"
    keyless = start_server({"models": models}, env={"RERANKD_DATABASE_URL": f"sqlite:///{database}"})
    assert httpx.get(f"{keyless.url}/metrics", timeout=30).status_code == 200
