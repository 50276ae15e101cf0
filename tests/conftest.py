"""Shared fixtures: generated tiny models, and real `rerankd serve` processes on free ports.

The models come from ``rerankd_support.models`` and the servers from ``rerankd_support.harness``, the
support package the benchmarks use too (``support/``, installed by ``make test``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rerankd_support.harness import Server, rerankd_server


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Start `rerankd serve` with a config dict; every server started is stopped at session end."""
    started: list[Server] = []
    workdir = tmp_path_factory.mktemp("servers")

    def start(config: dict[str, Any], env: dict[str, str] | None = None) -> Server:
        server = rerankd_server(config, workdir, env=dict(env or {}))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_bert(models_dir: Path) -> Path:
    from rerankd_support.models import make_tiny_bert_cross_encoder

    return make_tiny_bert_cross_encoder(models_dir / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_bert_two_labels(models_dir: Path) -> Path:
    from rerankd_support.models import make_tiny_bert_cross_encoder

    return make_tiny_bert_cross_encoder(models_dir / "tiny-bert-2", num_labels=2, seed=1)


@pytest.fixture(scope="session")
def tiny_xlmr(models_dir: Path) -> Path:
    from rerankd_support.models import make_tiny_xlmr_cross_encoder

    return make_tiny_xlmr_cross_encoder(models_dir / "tiny-xlmr")


@pytest.fixture(scope="session")
def tiny_bi_encoder(models_dir: Path) -> Path:
    from rerankd_support.models import make_tiny_bi_encoder

    return make_tiny_bi_encoder(models_dir / "tiny-bi")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from rerankd_support.models import bundled_minilm_path

    return bundled_minilm_path()


@pytest.fixture(scope="session")
def tiny_qwen3_reranker(models_dir: Path) -> Path:
    from rerankd_support.models import make_tiny_qwen3_reranker

    return make_tiny_qwen3_reranker(models_dir / "tiny-qwen3-reranker")


@pytest.fixture(scope="session")
def tiny_qwen3_seq_cls(models_dir: Path) -> Path:
    """The same weights as ``tiny_qwen3_reranker``, saved as a one-label Qwen3ForSequenceClassification."""
    from rerankd_support.models import make_tiny_qwen3_reranker

    return make_tiny_qwen3_reranker(models_dir / "tiny-qwen3-seq-cls", as_sequence_classification=True)
