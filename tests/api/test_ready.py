"""Liveness and readiness: ``/health`` says the process answers, ``/ready`` (``/readyz``) that it can serve
what it was configured for; ``--require-ready`` refuses to serve a broken config; a port in use is said
before any model loads. Real ``rerankd serve`` processes on free ports."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rerankd_support.harness import HOST, OFFLINE_ENV, Server, free_port

from rerankd.config import Settings
from rerankd.serving.runtime import Runtime

BM25 = {"name": "bm25", "kind": "bm25", "preload": True}


def missing_model(tmp_path: Path) -> dict[str, Any]:
    return {
        "name": "gone",
        "kind": "cross-encoder",
        "source": str(tmp_path / "no-such-model"),
        "preload": True,
    }


def test_ready_when_every_preloaded_model_is(start_server: Callable[..., Server]) -> None:
    server = start_server({"models": [BM25, {"name": "lazy", "kind": "bm25"}]})
    for path in ("/ready", "/readyz"):
        answer = httpx.get(server.url + path, timeout=10)
        assert answer.status_code == 200, answer.text
        # A model loaded on first use is not awaited: only preloaded ones count.
        assert answer.json() == {
            "status": "ready",
            "reasons": [],
            "models": {"bm25": "ready"},
            "database": "ok",
        }


def test_a_failed_preload_is_live_but_not_ready(start_server: Callable[..., Server], tmp_path: Path) -> None:
    server = start_server({"models": [BM25, missing_model(tmp_path)]})
    health = httpx.get(server.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["models_ready"] == 1
    for path in ("/ready", "/readyz"):
        answer = httpx.get(server.url + path, timeout=10)
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "not_ready" and body["database"] == "ok"
        assert body["models"] == {"bm25": "ready", "gone": "failed"}
        assert len(body["reasons"]) == 1 and "model 'gone' is failed" in body["reasons"][0]
        assert "no-such-model" in body["reasons"][0]  # the load error says what to fix


def _serve(
    config: dict[str, Any], tmp_path: Path, *args: str, port: int | None = None
) -> subprocess.Popen[str]:
    path = tmp_path / f"config-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [sys.executable, "-m", "rerankd", "serve", "--config", str(path), "--host", HOST]
    command += ["--port", str(port or free_port()), *args]
    env = {**os.environ, **OFFLINE_ENV, "RERANKD_DATABASE_URL": "none"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.parametrize("how", ["flag", "config"])
def test_require_ready_exits_non_zero_when_a_preload_fails(tmp_path: Path, how: str) -> None:
    config: dict[str, Any] = {"models": [BM25, missing_model(tmp_path)]}
    if how == "config":
        config["require_ready"] = True
    process = _serve(config, tmp_path, *(["--require-ready"] if how == "flag" else []))
    output, _ = process.communicate(timeout=120)
    assert process.returncode not in (0, None), output
    assert "require_ready: not ready: model 'gone' is failed" in output


def test_require_ready_serves_a_config_that_loads(tmp_path: Path) -> None:
    port = free_port()
    process = _serve({"models": [BM25]}, tmp_path, "--require-ready", port=port)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{HOST}:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the server never became ready")
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_a_port_in_use_is_reported_before_any_model_loads(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        began = time.monotonic()
        process = _serve({"models": [BM25]}, tmp_path, port=port)
        output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "address already in use" in output.lower()
    assert "loading model" not in output  # nothing was loaded for a server that could not listen
    assert time.monotonic() - began < 30


def test_a_database_that_does_not_answer_is_not_ready(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"models": [BM25], "database_url": f"sqlite:///{tmp_path / 'rerankd.db'}"}
    )
    runtime = Runtime.build(settings)

    async def probe() -> tuple[bool, str, bool, str]:
        await runtime.start()
        try:
            up = await runtime.readiness()
            assert runtime.meter.store is not None
            runtime.meter.store.engine.dispose()
            (tmp_path / "rerankd.db").unlink()
            (tmp_path / "rerankd.db").mkdir()  # where the file was, a folder: no database can open it
            down = await runtime.readiness()
            return up.ready, up.database, down.ready, down.database
        finally:
            await runtime.stop()

    assert asyncio.run(probe()) == (True, "ok", False, "unreachable")
