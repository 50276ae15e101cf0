"""A client that goes away: its queued work is dropped, not computed, and the server stays responsive.

Driven by events, not the wall clock: the server runs in this process with the model's forward pass
gated, so the test disconnects while the abandoned request's first pass is held, and only then lets
the worker go on; whatever the machine's speed, the rest of that request's work is still queued then.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rerankd_support.harness import AppServer, serve_app

from rerankd.api.app import create_app
from rerankd.backends.bi_encoder import BiEncoderBackend
from rerankd.config import load_settings

LONG_DOCUMENT = "the aerodynamics of a wing in a propeller slipstream at different angles of attack " * 20
WAIT_S = 60.0  # the longest any step may take before the test gives up (never a measured duration)


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Gate:
    """Once armed, holds every forward pass until released, and records each pass's input lengths."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = threading.Event()
        self.released = threading.Event()
        self.passes: list[list[int]] = []

    def wrap(self, forward: Callable[..., Any]) -> Callable[..., Any]:
        def gated(backend: Any, inputs: Sequence[Any]) -> Any:
            if self.armed:
                self.passes.append([len(item) for item in inputs])
                self.entered.set()
                if not self.released.wait(WAIT_S):
                    raise RuntimeError("the test never released the forward pass")
            return forward(backend, inputs)

        return gated


@pytest.fixture
def gated_server(
    tmp_path: Path, minilm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[AppServer, Gate]]:
    gate = Gate()
    monkeypatch.setattr(BiEncoderBackend, "forward", gate.wrap(BiEncoderBackend.forward))
    config = {
        "models": [{"name": "minilm", "kind": "bi-encoder", "source": str(minilm_path), "preload": True}],
        "max_batch_tokens": 2048,
        # One worker: with one per core (`parallel`), a second pass of the request may be running as well
        # when the client leaves, and "the pass that was running" below is one pass.
        "threads_layout": "single",
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    try:
        with serve_app(create_app(load_settings(path))) as server:
            yield server, gate
    finally:
        gate.released.set()  # never leave the model's worker blocked, whatever happened


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_disconnected_request_is_dropped(gated_server: tuple[AppServer, Gate]) -> None:
    server, gate = gated_server

    def metrics() -> str:
        return httpx.get(f"{server.url}/metrics", timeout=5).text

    computed_before = metric(metrics(), "rerankd_forward_tokens_total", model="minilm", kind="real")
    gate.armed = True
    body = {"model": "minilm", "query": "wing slipstream", "documents": [LONG_DOCUMENT] * 1000}
    payload = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as client:
        client.sendall(
            b"POST /v1/rerank HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        # The first forward pass of the thousand documents has started: the client goes away now.
        assert gate.entered.wait(WAIT_S), "the request never reached the model"
    wait_for(
        lambda: metric(metrics(), "rerankd_requests_total", model="minilm", status="499") == 1,
        "the server to notice the disconnect",
    )
    gate.released.set()

    # The next request is not stuck behind the abandoned one's thousand documents.
    began = time.monotonic()
    small = httpx.post(f"{server.url}/v1/rerank", json={**body, "documents": ["wing", "harbour"]}, timeout=60)
    waited = time.monotonic() - began
    assert small.status_code == 200

    text = metrics()
    assert metric(text, "rerankd_requests_total", model="minilm", status="499") == 1
    computed = metric(text, "rerankd_forward_tokens_total", model="minilm", kind="real") - computed_before
    full = 1000 * 256  # the abandoned request alone, had it been computed (256-token window)
    assert computed < full / 2, f"{computed} tokens computed: the abandoned work was not dropped"
    # Exactly: the pass that was running when the client left, then only the small request's short inputs.
    _, *after = gate.passes
    assert after, gate.passes
    assert all(max(lengths) < 16 for lengths in after), f"abandoned inputs computed later: {gate.passes}"
    assert computed == sum(map(sum, gate.passes))
    assert waited < 10, f"a 2-document request waited {waited:.1f}s behind abandoned work"
    assert re.search(r"rerankd_batch_rows_count", text)
