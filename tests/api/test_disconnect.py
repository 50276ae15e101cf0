"""A client that goes away: its queued work is dropped, not computed, and the server stays responsive."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess

LONG_DOCUMENT = "the aerodynamics of a wing in a propeller slipstream at different angles of attack " * 20


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.slow
def test_disconnected_request_is_dropped(
    start_server: Callable[..., ServerProcess], minilm_path: Path
) -> None:
    server = start_server(
        {
            "models": [{"name": "minilm", "kind": "bi-encoder", "source": str(minilm_path), "preload": True}],
            "max_batch_tokens": 2048,
        }
    )
    body = {"model": "minilm", "query": "wing slipstream", "documents": [LONG_DOCUMENT] * 1000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/rerank", json=body, timeout=3.0)

    # The next request is not stuck behind the abandoned one's thousand documents.
    began = time.monotonic()
    small = httpx.post(f"{server.url}/v1/rerank", json={**body, "documents": ["wing", "harbour"]}, timeout=60)
    waited = time.monotonic() - began
    assert small.status_code == 200

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = httpx.get(f"{server.url}/metrics", timeout=5).text
        if metric(text, "rerankd_requests_total", model="minilm", status="499") == 1:
            break
        time.sleep(0.2)
    assert metric(text, "rerankd_requests_total", model="minilm", status="499") == 1
    computed = metric(text, "rerankd_forward_tokens_total", model="minilm", kind="real")
    full = 1000 * 256  # the abandoned request alone, had it been computed (256-token window)
    assert computed < full / 2, f"{computed} tokens computed: the abandoned work was not dropped"
    assert waited < 10, f"a 2-document request waited {waited:.1f}s behind abandoned work"
    assert re.search(r"rerankd_batch_rows_count", text)
