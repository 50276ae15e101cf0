"""rerankd on Ray Serve (``rerankd.ray.serve``): two replicas answer the seed example, both serve, they
share the keys and ledger of one database, and a replica killed under load is replaced without a client
losing a request (clients retry, as Ray Serve's docs ask)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rerankd_support.harness import free_port

from rerankd.api.seed import SEED_EXAMPLE
from rerankd.config import Settings
from rerankd.ray.options import ServeOptions
from rerankd.ray.serve import DEPLOYMENT, REPLICA_HEADER, app_builder, application

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

ADMIN = "adm-ray-serve-test"


def rerankd_cli(*args: str, database: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RERANKD_")}
    command = [sys.executable, "-m", "rerankd", *args, "--database-url", database, "--json"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=True)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two replicas of a bm25 model answering to the seed's model names, on a free port; their database
    (SQLite here, one machine) holds one managed key. Yields the URL and that key."""
    from ray import serve

    database = f"sqlite:///{tmp_path_factory.mktemp('ray-serve') / 'rerankd.db'}"
    key = rerankd_cli("keys", "create", "--name", "ray-serve", database=database)["key"]
    settings = Settings.model_validate(
        {
            "database_url": database,
            "admin_keys": [ADMIN],
            "models": [{"name": "bm25", "kind": "bm25", "preload": True, "aliases": [SEED_EXAMPLE["model"]]}],
        }
    )
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(
        application(settings, ServeOptions(replicas=2, num_cpus=0.5)), name=DEPLOYMENT, route_prefix="/"
    )
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        serve.shutdown()


async def replicas_answering(url: str, key: str, count: int) -> list[str]:
    async with httpx.AsyncClient(timeout=60) as client:
        headers = {"Authorization": f"Bearer {key}"}
        answers = await asyncio.gather(
            *(client.post(f"{url}/v1/rerank", json=SEED_EXAMPLE, headers=headers) for _ in range(count))
        )
    assert [answer.status_code for answer in answers] == [200] * count
    return [answer.headers[REPLICA_HEADER] for answer in answers]


def test_two_replicas_answer_the_seed_example_and_share_the_ledger(served: tuple[str, str]) -> None:
    url, key = served
    answer = httpx.post(f"{url}/v1/rerank", json=SEED_EXAMPLE, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == SEED_EXAMPLE["model"] or body["metadata"]["served_by"] == "bm25"
    assert len(body["results"]) == SEED_EXAMPLE["top_n"]
    assert body["results"][0]["index"] == 1  # the document that names the capital of the United States
    replicas = set(asyncio.run(replicas_answering(url, key, 40)))
    assert len(replicas) == 2
    # Every replica charged the same key in the same ledger: 41 calls in all.
    usage = httpx.get(
        f"{url}/admin/usage", params={"by": "key"}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert usage.status_code == 200, usage.text
    assert sum(group["calls"] for group in usage.json()["groups"]) >= 41


def test_a_killed_replica_is_replaced_and_no_request_is_lost(served: tuple[str, str]) -> None:
    import ray

    url, key = served
    before = set(asyncio.run(replicas_answering(url, key, 20)))
    victim = sorted(before)[0]
    seen: set[str] = set()
    lost: list[str] = []
    answered = 0
    stop = threading.Event()

    def client() -> None:  # one client of several, each retrying a failed request up to 30 times
        nonlocal answered
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
            while not stop.is_set():
                for _ in range(30):
                    try:
                        answer = http.post(f"{url}/v1/rerank", json=SEED_EXAMPLE)
                    except httpx.HTTPError:
                        time.sleep(0.2)
                        continue
                    if answer.status_code == 200:
                        seen.add(answer.headers[REPLICA_HEADER])
                        answered += 1
                        break
                    time.sleep(0.2)
                else:
                    lost.append("a request failed 30 times")

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(1.0)
        ray.kill(ray.get_actor(f"SERVE_REPLICA::{DEPLOYMENT}#{DEPLOYMENT}#{victim}", namespace="serve"))
        killed_at = answered
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (seen - before):
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    assert not lost
    assert seen - before, "no new replica answered within 120 s of the kill"
    assert answered > killed_at


def test_the_app_builder_checks_its_arguments(tmp_path: Path) -> None:
    from rerankd.config import ConfigError

    with pytest.raises(ConfigError, match="unknown argument"):
        app_builder({"replica": "2"})
    with pytest.raises(ConfigError, match="--min-replicas must be"):
        app_builder({"min_replicas": "3", "max_replicas": "2"})
