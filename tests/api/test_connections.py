"""Connections nobody uses cannot hold the server: real `rerankd serve` processes, real sockets.

Idle, slow-header and slow-body clients are closed after the configured timeouts while normal requests
are answered promptly; a head over ``max_header_bytes`` gets 431; beyond the connection cap, and with a
small file-descriptor limit, idle connections make room for the clients that send requests."""

from __future__ import annotations

import resource
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from rerankd_support.harness import HOST, Server

from rerankd.api.connections import FD_RESERVE, connection_cap

MODELS = [{"name": "bm25", "kind": "bm25"}]
BODY = {"model": "bm25", "query": "capital", "documents": ["Paris is the capital of France.", "Cats purr."]}
PROMPT = 2.0  # seconds: a bm25 answer takes milliseconds; the margin is for a busy test machine
HEAD = "POST /v1/rerank HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"


@pytest.fixture
def sockets() -> Iterator[Callable[[Server], socket.socket]]:
    """Open a raw client socket to a server; every one is closed after the test."""
    with ExitStack() as stack:

        def open_(server: Server) -> socket.socket:
            sock = stack.enter_context(socket.create_connection((HOST, server.port), timeout=5))
            return sock

        yield open_


def answered_promptly(server: Server, seconds: float) -> None:
    began = time.monotonic()
    response = httpx.post(f"{server.url}/v1/rerank", json=BODY, timeout=seconds + 5)
    assert response.status_code == 200, response.text
    assert time.monotonic() - began < seconds


def closed(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing ``sock`` within ``within`` seconds; None if it is still open."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        return received
    except TimeoutError:
        return None
    return received


def send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # closed by the server already: what the test is waiting for


def test_idle_slow_header_and_slow_body_clients_are_closed_while_requests_are_answered(
    start_server: Callable[..., Server], sockets: Callable[[Server], socket.socket]
) -> None:
    timeout = 1.5
    config: dict[str, Any] = {"models": MODELS, "header_timeout": timeout, "body_timeout": timeout}
    server = start_server({**config, "keep_alive_timeout": 1})
    answered_promptly(server, 10.0)  # the model loaded
    idle = [sockets(server) for _ in range(150)]
    slow_head = [sockets(server) for _ in range(100)]
    slow_body = [sockets(server) for _ in range(50)]
    for sock in slow_head:
        sock.sendall(HEAD.encode())
    for sock in slow_body:
        sock.sendall((HEAD + "Content-Length: 1000\r\n\r\n" + '{"model": "bm25", ').encode())
    began = time.monotonic()
    # Trickling headers does not extend the head's deadline; requests meanwhile are answered at once.
    while time.monotonic() - began < timeout + 1:
        for number, sock in enumerate(slow_head):
            send_quietly(sock, f"X-Trickle-{number}: 1\r\n".encode())
        answered_promptly(server, PROMPT)
        time.sleep(0.25)
    assert all(closed(sock, 2.0) == b"" for sock in idle)  # said nothing: closed without an answer
    assert all((closed(sock, 2.0) or b"").startswith(b"HTTP/1.1 408 ") for sock in slow_head)
    assert all(closed(sock, 2.0) is not None for sock in slow_body)
    answered_promptly(server, PROMPT)


def test_a_keep_alive_connection_is_reused_then_closed_when_idle(
    start_server: Callable[..., Server], sockets: Callable[[Server], socket.socket]
) -> None:
    server = start_server({"models": MODELS, "keep_alive_timeout": 1, "header_timeout": 30})
    with httpx.Client(base_url=server.url, timeout=5) as client:
        first = client.post("/v1/rerank", json=BODY)
        second = client.post("/v1/rerank", json=BODY)
        assert first.status_code == second.status_code == 200
    sock = sockets(server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    time.sleep(0.2)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    began = time.monotonic()
    assert closed(sock, 5.0) == b""
    assert time.monotonic() - began < 2.5  # the keep-alive timeout, not the header timeout


def test_a_head_over_the_limit_gets_431_and_one_under_it_is_served(
    start_server: Callable[..., Server], sockets: Callable[[Server], socket.socket]
) -> None:
    server = start_server({"models": MODELS, "max_header_bytes": 8192})
    assert httpx.get(f"{server.url}/health", headers={"X-Big": "a" * 6000}).status_code == 200
    for size in (9000, 8 * 1024 * 1024):
        sock = sockets(server)
        send_quietly(sock, f"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: {'a' * size}\r\n\r\n".encode())
        answer = closed(sock, 5.0)
        assert answer is not None and answer.startswith(b"HTTP/1.1 431 "), answer
    answered_promptly(server, PROMPT)


def test_beyond_the_cap_the_connection_waiting_longest_makes_room(
    start_server: Callable[..., Server], sockets: Callable[[Server], socket.socket]
) -> None:
    server = start_server({"models": MODELS, "max_connections": 40, "header_timeout": 60})
    idle = [sockets(server) for _ in range(100)]
    time.sleep(0.5)
    for _ in range(5):
        answered_promptly(server, PROMPT)
    still_open = [sock for sock in idle if closed(sock, 0.05) is None]
    assert len(still_open) < 40
    assert set(still_open) <= set(idle[-40:])  # the oldest went first


def test_with_a_small_descriptor_limit_idle_connections_do_not_starve_requests(
    start_server: Callable[..., Server], sockets: Callable[[Server], socket.socket]
) -> None:
    # `ulimit -n 256`: 64 kept for the process, max_connections 96, a listen backlog of 96.
    limited = ("sh", "-c", 'ulimit -n 256 && exec "$0" "$@"', sys.executable, "-m", "rerankd")
    server = start_server({"models": MODELS, "header_timeout": 60}, prefix=limited)
    idle = [sockets(server) for _ in range(300)]
    began = time.monotonic()
    for _ in range(10):
        answered_promptly(server, 2.0)
    assert time.monotonic() - began < 5.0
    assert sum(closed(sock, 0.05) is not None for sock in idle) >= 300 - 96
    assert "max_connections 1000 lowered to 96" in server.log()
    assert "out of system resource" not in server.log()  # never ran out of descriptors


@pytest.mark.parametrize(
    ("limit", "configured", "expected"),
    [
        (1_048_576, 1000, (1000, 2048)),
        (1024, 1000, (480, 480)),  # a common default soft limit: half of what the reserve leaves
        (1024, 100, (100, 860)),
        (256, 1000, (96, 96)),
    ],
)
def test_the_cap_and_backlog_fit_the_descriptor_limit(
    monkeypatch: pytest.MonkeyPatch, limit: int, configured: int, expected: tuple[int, int]
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (limit, limit))
    cap, backlog = connection_cap(configured)
    assert (cap, backlog) == expected
    assert cap + backlog <= limit - FD_RESERVE or limit > configured + 2048
