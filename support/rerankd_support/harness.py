"""The server harness: a real server subprocess on 127.0.0.1, on a free port, for tests and benchmarks.

:class:`Server` starts any HTTP server command (``rerankd serve``, the benchmarks' naive server,
Infinity) with ``--port P`` appended, waits until ``GET /health`` answers 200 (and, if asked, until every
configured model is ready), sends optional warm-up requests, appends the process's output to a log file,
and stops the whole process group, also after a failed start. :func:`rerankd_server` builds one for
``rerankd serve`` from a config dict; :func:`serve_app` runs an ASGI app in a thread of the calling
process instead, for tests that must reach into the server (gate a backend, inject a clock).
Every server runs offline: the models are local folders.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

__all__ = [
    "HOST",
    "OFFLINE_ENV",
    "AppServer",
    "Server",
    "all_models_ready",
    "free_port",
    "json_or_empty",
    "rerankd_command",
    "rerankd_server",
    "serve_app",
]

HOST = "127.0.0.1"
# Servers started here never reach for the network.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
LOG_TAIL_CHARS = 6000  # of the server's log, quoted in a failed start's error

ReadyCheck = Callable[[dict[str, Any]], bool]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def json_or_empty(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or ``{}`` when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def all_models_ready(health: dict[str, Any]) -> bool:
    """rerankd answers /health while models load; it is ready once every configured model is.

    Servers whose /health does not count models (the naive server, Infinity) pass at once."""
    return bool(health.get("models_ready", 0) >= health.get("models_configured", 0))


@dataclass
class Server:
    """A server subprocess on 127.0.0.1; :meth:`start` and :meth:`restart` pick a fresh free port.

    ``command`` is run with ``--port P`` appended, in its own process group (so stopping it also stops
    workers it forked, and Ctrl-C in the caller's terminal reaches it only through :meth:`stop`). Its
    output goes to ``log_path``, appended, with a header line per start. Use it as a context manager,
    or call :meth:`stop` in a ``finally``: a server whose start failed is stopped already.
    """

    command: list[str]
    log_path: Path
    kind: str = "server"  # what it is, for messages and reports: "rerankd", "naive", "infinity-torch"...
    model: str = ""  # the model it serves, for reports (benchmarks)
    env: dict[str, str] = field(default_factory=dict)  # added to base_env and OFFLINE_ENV
    base_env: Mapping[str, str] | None = None  # the environment it starts from [default: os.environ]
    cwd: Path | None = None
    ready: ReadyCheck | None = None  # a condition on /health's JSON besides its 200
    warmup: list[bytes] = field(default_factory=list)  # rerank bodies sent, unmeasured, after each start
    start_timeout: float = 120.0
    poll_interval: float = 0.2
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Server:
        """Start the process, wait until it is healthy and warm it up; on any failure stop it and raise."""
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"=== start {dt.datetime.now().isoformat()} port {self.port}\n".encode())
            log.flush()
            base = os.environ if self.base_env is None else self.base_env
            self.proc = subprocess.Popen(
                [*self.command, "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**base, **OFFLINE_ENV, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )
        try:
            self.wait_ready()
            self._warm_up()
        except BaseException:
            self.stop(grace=1.0)
            raise
        return self

    def wait_ready(self, timeout: float | None = None) -> Server:
        """Poll /health until it answers 200 (and ``ready`` holds); raise if the process exits first."""
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"{self.kind} exited with {code} at start-up{self._log_tail()}")
            if self._healthy():
                return self
            time.sleep(self.poll_interval)
        raise TimeoutError(f"{self.kind} did not become healthy in {timeout:.0f}s{self._log_tail()}")

    def _healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.url}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        return self.ready is None or self.ready(json_or_empty(response))

    def _warm_up(self) -> None:
        # The first forward passes pay for lazy initialisation and memory growth; keep that out of cells.
        for body in self.warmup:
            httpx.post(
                f"{self.url}/v1/rerank",
                content=body,
                headers={"content-type": "application/json"},
                timeout=self.start_timeout,
            )

    def log(self) -> str:
        """Everything the process (and every earlier start of it) has written so far."""
        if not self.log_path.is_file():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _log_tail(self) -> str:
        # The first line of a start-up error says where the log is; the rest is its end.
        return f" (log: {self.log_path}):\n{self.log()[-LOG_TAIL_CHARS:]}"

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; nothing if not running.

        ``proc`` stays, so its exit status is still readable after a stop."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                # A graceful shutdown waits for running handlers, which can take minutes mid-backlog.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)

    def restart(self) -> Server:
        """Stop at once (a server restarted mid-backlog has nothing worth waiting for) and start again."""
        self.stop(grace=1.0)
        self.restarts += 1
        return self.start()

    def __enter__(self) -> Server:
        return self.start() if not self.alive else self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def rerankd_command(
    config_path: Path | None = None,
    *,
    prefix: Sequence[str] = (sys.executable, "-m", "rerankd"),
    log_level: str | None = None,
) -> list[str]:
    """``rerankd serve`` on 127.0.0.1 (the port is appended by :class:`Server`)."""
    command = [*prefix, "serve"]
    if config_path is not None:
        command += ["--config", str(config_path)]
    command += ["--host", HOST]
    if log_level:
        command += ["--log-level", log_level]
    return command


_names = itertools.count()


def rerankd_server(
    config: Mapping[str, Any] | None,
    workdir: Path,
    *,
    name: str = "rerankd",
    prefix: Sequence[str] = (sys.executable, "-m", "rerankd"),
    log_level: str | None = None,
    **options: Any,
) -> Server:
    """A (not yet started) ``rerankd serve`` with ``config`` written to ``workdir`` as YAML.

    ``config`` None serves the packaged default configuration. The config and the log are named
    ``<name>-<n>.yaml`` / ``.log`` with ``n`` unique in this process. ``options`` are :class:`Server`
    fields (``env``, ``base_env``, ``cwd``, ``ready``, ``model``, ``start_timeout``...).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    while True:
        stem = f"{name}-{next(_names)}"
        if not (workdir / f"{stem}.log").exists() and not (workdir / f"{stem}.yaml").exists():
            break
    config_path = None
    if config is not None:
        config_path = workdir / f"{stem}.yaml"
        config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    command = rerankd_command(config_path, prefix=prefix, log_level=log_level)
    return Server(command, workdir / f"{stem}.log", kind="rerankd", **options)


@dataclass
class AppServer:
    """An ASGI app served by uvicorn on a thread of this process (see :func:`serve_app`)."""

    port: int
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextlib.contextmanager
def serve_app(app: Any, *, timeout: float = 120.0) -> Iterator[AppServer]:
    """Serve ``app`` on 127.0.0.1 on a free port from a thread of this process, lifespan included
    (rerankd loads its preloaded models there); yields once it is started, stops it on exit."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host=HOST, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the in-process server stopped at start-up; see the test's log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the in-process server did not start in {timeout:.0f}s")
            time.sleep(0.05)
        yield AppServer(port, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
