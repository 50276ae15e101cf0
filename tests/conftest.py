"""Shared fixtures: generated tiny models, and real `rerankd serve` processes on free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / "shared" / "seeds"
CRANFIELD = REPO.parent / "shared" / "data" / "cranfield"

# Servers started by the tests never reach for the network.
SERVER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A real `rerankd serve` subprocess bound to 127.0.0.1 on a free port."""

    def __init__(self, config: dict[str, Any], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.config_path = workdir / f"config-{id(self)}.yaml"
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rerankd",
                "serve",
                "--config",
                str(self.config_path),
                "--port",
                str(self.port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **SERVER_ENV, **(env or {})},
        )

    def wait_ready(self, timeout: float = 120.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rerankd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"rerankd did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerProcess]]:
    """Start `rerankd serve` with a config dict; every server started is stopped at session end."""
    started: list[ServerProcess] = []
    workdir = tmp_path_factory.mktemp("servers")

    def start(config: dict[str, Any], env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(config, workdir, env)
        started.append(server)
        return server.wait_ready()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_bert(models_dir: Path) -> Path:
    from rerankd.synthetic import make_tiny_bert_cross_encoder

    return make_tiny_bert_cross_encoder(models_dir / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_bert_two_labels(models_dir: Path) -> Path:
    from rerankd.synthetic import make_tiny_bert_cross_encoder

    return make_tiny_bert_cross_encoder(models_dir / "tiny-bert-2", num_labels=2, seed=1)


@pytest.fixture(scope="session")
def tiny_xlmr(models_dir: Path) -> Path:
    from rerankd.synthetic import make_tiny_xlmr_cross_encoder

    return make_tiny_xlmr_cross_encoder(models_dir / "tiny-xlmr")


@pytest.fixture(scope="session")
def tiny_bi_encoder(models_dir: Path) -> Path:
    from rerankd.synthetic import make_tiny_bi_encoder

    return make_tiny_bi_encoder(models_dir / "tiny-bi")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from rerankd.synthetic import bundled_minilm_path

    return bundled_minilm_path()


@pytest.fixture(scope="session")
def tiny_qwen3_reranker(models_dir: Path) -> Path:
    from rerankd.synthetic import make_tiny_qwen3_reranker

    return make_tiny_qwen3_reranker(models_dir / "tiny-qwen3-reranker")


@pytest.fixture(scope="session")
def tiny_qwen3_seq_cls(models_dir: Path) -> Path:
    """The same weights as ``tiny_qwen3_reranker``, saved as a one-label Qwen3ForSequenceClassification."""
    from rerankd.synthetic import make_tiny_qwen3_reranker

    return make_tiny_qwen3_reranker(models_dir / "tiny-qwen3-seq-cls", as_sequence_classification=True)
