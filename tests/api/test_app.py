"""The app's error handling as a client sees it on the wire: every 500 is JSON and carries its request id,
also when the failure escapes every middleware (Starlette answers those outside them)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from rerankd_support.harness import HOST, serve_app

from rerankd.api.app import create_app
from rerankd.config import load_settings
from rerankd.types import CallContext, RerankRequest


def raw_exchange(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Status line, headers and body of the answer to ``request``, read off a socket."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status, headers, body


def test_an_unexpected_failure_is_a_json_500_with_the_request_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"models": [{"name": "bm25", "kind": "bm25"}]}), encoding="utf-8")
    app = create_app(load_settings(config))

    @app.get("/fails")
    async def fails() -> None:
        raise RuntimeError("a route's bug")

    async def broken_serve(request: RerankRequest, context: CallContext) -> Any:
        raise ZeroDivisionError("a bug deep in the service")

    monkeypatch.setattr(app.state.service, "serve", broken_serve)
    body = json.dumps({"model": "bm25", "query": "q", "documents": ["d"]}).encode()
    requests = [
        b"GET /fails HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"POST /v1/rerank HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body,
    ]
    with serve_app(app) as server:
        for request in requests:
            status, headers, answer = raw_exchange(server.port, request)
            assert status.startswith("HTTP/1.1 500 "), (status, answer)
            assert headers["content-type"] == "application/json"
            assert len(headers["x-request-id"]) == 32
            error = json.loads(answer)["error"]
            assert error["code"] == 500 and "internal error" in error["message"]
            assert headers["x-request-id"] in caplog.text  # the log line an operator looks it up by


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ([1, 2], "body: must be a JSON object"),
        ({"model": "bm25", "query": "q", "documents": [1]}, "documents.0: must be a string or a JSON object"),
        ({"model": "bm25", "query": "q", "documents": [{"t": 1}]}, "documents.0.text: is required"),
        ({"query": "q", "documents": "abc"}, "model: is required; documents: must be a list"),
    ],
)
def test_invalid_bodies_are_said_in_the_clients_terms(body: Any, said: str) -> None:
    """Pydantic's wording names rerankd's classes ("instance of SeedRerankRequest") and a union's members
    (`documents.0.TextDocument`); clients get what to fix, in every dialect."""
    from fastapi.testclient import TestClient

    app = create_app(load_settings(None, models=[{"name": "bm25", "kind": "bm25"}], database_url="none"))
    with TestClient(app) as client:
        for path in ("/v1/rerank", "/cohere/v2/rerank", "/jina/v1/rerank"):
            answer = client.post(path, json=body)
            assert answer.status_code == 422
            # (Cohere's dialect words an object without `text` itself, naming its rank_fields.)
            assert said in answer.text or path != "/v1/rerank", answer.text
            for internal in ("instance of", "Request", "TextDocument", ".str", "dict[", "Input should be"):
                assert internal not in answer.text, (path, answer.text)
