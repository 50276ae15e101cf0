"""A fake upstream rerank provider: a real HTTP server on 127.0.0.1 that answers in a provider's
dialect and injects faults on command (timeout, 500, 503, 429 with Retry-After, malformed JSON,
connection reset, a wrong-shape body, 401, and refusals that echo the credentials received).

Scores are deterministic: the share of a document's words that occur in the query, so rankings are
checkable. Every request is recorded (path, headers, body, arrival time).
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPORTED_TOKENS = 42
LEAK_MARKER = "internal-stack-trace-do-not-forward"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


def overlap_score(query: str, document: str) -> float:
    words = {w.strip(".,?!").lower() for w in query.split()}
    doc = [w.strip(".,?!").lower() for w in document.split()]
    return round(sum(w in words for w in doc) / max(1, len(doc)), 6)


def answer(provider: str, body: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """A successful answer in the provider's format, for every document."""
    documents = body.get("documents") or body.get("texts") or []
    texts = [d if isinstance(d, str) else d.get("text", "") for d in documents]
    ranked: list[dict[str, Any]] = sorted(
        ({"index": i, "relevance_score": overlap_score(body["query"], t)} for i, t in enumerate(texts)),
        key=lambda r: -r["relevance_score"],
    )
    usage = {"total_tokens": REPORTED_TOKENS}
    if provider == "cohere":
        return {
            "id": str(uuid.uuid4()),
            "results": ranked,
            "meta": {"billed_units": {"search_units": 1}, "tokens": {"input_tokens": REPORTED_TOKENS}},
        }, {}
    if provider == "voyage":
        return {"object": "list", "data": ranked, "model": body.get("model"), "usage": usage}, {}
    if provider == "tei":
        return [{"index": r["index"], "score": r["relevance_score"]} for r in ranked], {
            "x-compute-tokens": str(REPORTED_TOKENS)
        }
    if provider == "seed":
        results = [{**r, "document": texts[r["index"]]} for r in ranked]
        return {
            "model": body.get("model"),
            "results": results,
            "usage": {**usage, "query_tokens": 2, "documents_tokens": 40},
            "metadata": {},
        }, {}
    if provider == "infinity":
        return {
            "object": "rerank",
            "results": ranked,
            "model": body.get("model"),
            "usage": {"prompt_tokens": REPORTED_TOKENS, **usage},
            "id": "x",
            "created": 0,
        }, {}
    # jina, vllm
    return {"id": "rerank-x", "model": body.get("model"), "usage": usage, "results": ranked}, {}


class FakeUpstream:
    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.faults: deque[str] = deque()
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.default = "ok"
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def script(self, *faults: str, default: str = "ok") -> FakeUpstream:
        """Faults for the next requests, in order; then `default` for every later one."""
        with self._lock:
            self.faults = deque(faults)
            self.default = default
            self.received.clear()
        return self

    def _next_fault(self) -> str:
        with self._lock:
            return self.faults.popleft() if self.faults else self.default

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                body = json.loads(raw) if raw else None
                with fake._lock:
                    fake.received.append(Received(self.path, dict(self.headers), body, time.monotonic()))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._respond(fake._next_fault(), body)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                headers = {"Content-Type": "application/json", **(headers or {})}
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def _respond(self, fault: str, body: Any) -> None:
                kind, _, arg = fault.partition(":")
                if kind == "sleep":  # answer correctly, but late
                    time.sleep(float(arg))
                    kind = "ok"
                if kind == "ok":
                    data, headers = answer(fake.provider, body)
                    self._send(200, json.dumps(data).encode(), headers)
                elif kind in ("500", "503", "401", "400"):
                    error = {"message": f"upstream says {kind}", "trace": LEAK_MARKER * 20}
                    self._send(int(kind), json.dumps(error).encode())
                elif kind == "429":
                    self._send(429, b'{"message": "slow down"}', {"Retry-After": arg or "1"})
                elif kind == "malformed":  # a body cut off in the middle
                    self._send(200, b'{"results": [{"index": 0, ')
                elif kind == "html":  # a proxy's page in place of the API's answer
                    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                    self._send(200, page, {"Content-Type": "text/html"})
                elif kind == "usage":  # a correct ranking with the usage given, e.g. usage:-5 or usage:1e30
                    data, headers = answer(fake.provider, body)
                    data["usage"] = {"total_tokens": json.loads(arg)}
                    self._send(200, json.dumps(data).encode(), headers)
                elif kind == "wrong-shape":
                    self._send(200, json.dumps({"unexpected": [1, 2, 3]}).encode())
                elif kind.startswith("echo-"):  # a refusal quoting the key it was sent, as many do
                    self._echo(kind.removeprefix("echo-"), int(arg or 401))
                elif kind == "reset":  # abort the connection: the client sees a reset, no response
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                else:
                    raise ValueError(f"unknown fault {fault!r}")

            def _echo(self, form: str, status: int) -> None:
                scheme, _, credential = self.headers.get("Authorization", "").partition(" ")
                if scheme.lower() == "basic":  # from user:password in the base URL
                    credential = base64.b64decode(credential).decode()
                said = f"invalid api key {credential} (header: Authorization: {scheme} {credential})"
                if form == "json":
                    error = {"message": said, "key": credential}
                    self._send(status, json.dumps(error).encode())
                elif form == "html":
                    page = f"<html><body><h1>{status}</h1><p>{said}</p></body></html>"
                    self._send(status, page.encode(), {"Content-Type": "text/html"})
                else:
                    self._send(status, said.encode(), {"Content-Type": "text/plain"})

        return Handler
