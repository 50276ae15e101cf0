"""Reload without a restart: SIGHUP (and ``POST /admin/reload``) re-read the config of a running
``rerankd serve``. Under a steady load no request fails while a model is added, one changes, a price and an
alias change; an invalid config is refused and the running one kept."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from rerankd_support.harness import Server

ADMIN = "adm-reload-test"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
BODY = {"query": "boundary layer flow", "documents": ["the boundary layer", "a wing in flow", "heat"]}


def config(
    price: str, alias: str, *, extra: list[dict[str, Any]] | None = None, k1: float = 1.2
) -> dict[str, Any]:
    return {
        "admin_keys": [ADMIN],
        "models": [
            {
                "name": "a",
                "kind": "bm25",
                "aliases": [alias],
                "price": {"per_request": price},
                "preload": True,
            },
            {"name": "c", "kind": "bm25", "k1": k1, "preload": True},
            *(extra or []),
        ],
    }


def config_path(server: Server) -> Path:
    return Path(server.command[server.command.index("--config") + 1])


def spent(server: Server, key_id: int) -> Decimal:
    usage = httpx.get(f"{server.url}/admin/usage?key={key_id}", headers=AS_ADMIN, timeout=30).json()
    return Decimal(usage["total"]["cost"])


def model_names(server: Server) -> dict[str, list[str]]:
    cards = httpx.get(server.url + "/v1/models", headers=AS_ADMIN, timeout=30).json()["data"]
    return {card["id"]: card["aliases"] for card in cards}


def test_sighup_reloads_models_prices_and_aliases_with_no_request_failed(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(config("0.01", "old-alias"))
    created = httpx.post(
        server.url + "/admin/keys", json={"name": "load"}, headers=AS_ADMIN, timeout=30
    ).json()
    client_key = {"Authorization": f"Bearer {created['key']}"}

    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:  # a steady stream on both models while the config changes under it
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                for model in ("a", "c"):
                    answer = client.post(
                        server.url + "/v1/rerank", json={**BODY, "model": model}, headers=client_key
                    )
                    statuses.append(answer.status_code)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        added = {"name": "b", "kind": "bm25", "preload": True}
        config_path(server).write_text(yaml.safe_dump(config("0.02", "new-alias", extra=[added], k1=1.6)))
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and model_names(server).get("a") != ["new-alias"]:
            time.sleep(0.2)
        time.sleep(1.0)  # the load runs on the new config for a while too
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert server.alive
    assert statuses and set(statuses) == {200}, {status: statuses.count(status) for status in set(statuses)}
    names = model_names(server)
    assert names["a"] == ["new-alias"] and "b" in names and "c" in names
    # The new price applies to the next call; the old alias is gone, the new one answers.
    before = spent(server, created["id"])
    answer = httpx.post(server.url + "/v1/rerank", json={**BODY, "model": "new-alias"}, headers=client_key)
    assert answer.status_code == 200
    assert spent(server, created["id"]) - before == Decimal("0.02")
    gone = httpx.post(server.url + "/v1/rerank", json={**BODY, "model": "old-alias"}, headers=client_key)
    assert gone.status_code == 404
    log = server.log_path.read_text(encoding="utf-8")
    assert "reloaded: models added ['b'], changed ['c']" in log


def test_an_invalid_config_is_refused_and_the_running_one_kept(start_server: Callable[..., Server]) -> None:
    server = start_server(config("0.01", "x"))
    path = config_path(server)
    path.write_text("models: [{name: broken, kind: no-such-kind}]\nadmin_keys: [" + ADMIN + "]\n")
    refused = httpx.post(server.url + "/admin/reload", headers=AS_ADMIN, timeout=30)
    assert refused.status_code == 422 and "reload refused, the running config is kept" in refused.text
    assert "no-such-kind" in refused.text
    assert set(model_names(server)) == {"a", "c"}
    assert httpx.post(server.url + "/v1/rerank", json={**BODY, "model": "a"}).status_code == 401  # keys kept

    # A setting the running server cannot take over is named, and kept at its running value.
    path.write_text(yaml.safe_dump({**config("0.01", "x"), "v1_dialect": "cohere"}))
    done = httpx.post(server.url + "/admin/reload", headers=AS_ADMIN, timeout=30)
    assert done.status_code == 200, done.text
    assert done.json() == {
        "added": [],
        "changed": [],
        "removed": [],
        "kept": ["a", "c"],
        "needs_restart": ["v1_dialect"],
    }
    assert httpx.post(server.url + "/admin/reload", timeout=30).status_code == 401  # the admin API's own key
