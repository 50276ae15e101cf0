"""The server harness on a stand-in server: start on a free port, health, log, restart, stop, failures."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from rerankd_support.harness import Server, all_models_ready, free_port

# A stand-in for a server: answers GET /health with ``HEALTH`` (JSON), prints a line, takes --port.
STANDIN = """
import http.server, json, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(HEALTH).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("stand-in listening", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def standin(tmp_path: Path, health: str = "{}", **fields: object) -> Server:
    script = "HEALTH = " + health + "\n" + STANDIN
    return Server([sys.executable, "-c", script], tmp_path / "standin.log", kind="standin", **fields)  # type: ignore[arg-type]


def test_free_port_is_bindable() -> None:
    assert 1024 <= free_port() <= 65535


def test_start_log_restart_stop(tmp_path: Path) -> None:
    with standin(tmp_path) as server:
        assert server.alive and server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{server.url}/health").status_code == 200
        first_port = server.port
        server.restart()
        assert server.alive and server.restarts == 1
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert server.port != first_port or server.log().count("=== start") == 2
    assert not server.alive and server.proc is not None and server.proc.poll() is not None
    assert server.log().count("stand-in listening") == 2


def test_a_server_that_exits_fails_with_its_log(tmp_path: Path) -> None:
    server = Server([sys.executable, "-c", "print('bad config'); raise SystemExit(3)"], tmp_path / "x.log")
    with pytest.raises(RuntimeError, match=r"exited with 3(.|\n)*bad config"):
        server.start()
    assert not server.alive


def test_a_server_never_ready_times_out_and_is_stopped(tmp_path: Path) -> None:
    server = standin(
        tmp_path, '{"models_ready": 0, "models_configured": 1}', ready=all_models_ready, start_timeout=1.0
    )
    with pytest.raises(TimeoutError, match="did not become healthy"):
        server.start()
    assert not server.alive


def test_ready_check_reads_health() -> None:
    assert all_models_ready({"models_ready": 2, "models_configured": 2})
    assert not all_models_ready({"models_ready": 1, "models_configured": 2})
    assert all_models_ready({"status": "ok", "in_flight": 0})  # servers that do not count models
