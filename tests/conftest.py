"""Shared fixtures: generated tiny models, real `rerankd serve` processes on free ports, and a throw-away
PostgreSQL server.

The models come from ``rerankd_support.models``, the servers from ``rerankd_support.harness`` and the
database server from ``rerankd_support.postgres``: the support package the benchmarks use too
(``support/``, installed by ``make test``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rerankd_support.harness import Server, rerankd_server
from rerankd_support.postgres import PostgresServer, PostgresUnavailable


@pytest.fixture(scope="session", autouse=True)
def session_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Servers and apps that outlive a test (module- and session-scoped fixtures) share a database of the
    session's; none of them creates keys, so they all stay open as configured."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("database") / "rerankd.db"
        patch.setenv("RERANKD_DATABASE_URL", f"sqlite:///{path}")
        yield


@pytest.fixture(autouse=True)
def own_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's servers and apps keep their keys and ledger in a database of the test's own (the
    default, ./rerankd.db, would be shared by every test and left in the checkout)."""
    monkeypatch.setenv("RERANKD_DATABASE_URL", f"sqlite:///{tmp_path / 'rerankd.db'}")


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Start `rerankd serve` with a config dict (``options``: rerankd_server's, e.g. ``prefix``); every
    server started is stopped at session end."""
    started: list[Server] = []
    workdir = tmp_path_factory.mktemp("servers")

    def start(config: dict[str, Any], env: dict[str, str] | None = None, **options: Any) -> Server:
        server = rerankd_server(config, workdir, env=dict(env or {}), **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the session's Ray tests (marked ``ray``): 2 CPUs, no dashboard; shut down at the
    end. Its workers inherit this process's environment as it is when the first Ray test starts."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


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
def tiny_late_interaction(models_dir: Path) -> Path:
    from rerankd_support.models import make_tiny_late_interaction

    return make_tiny_late_interaction(models_dir / "tiny-colbert")


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL cluster on a free 127.0.0.1 port, stopped (and removed) at session end.

    PostgreSQL is required, not optional: without its binaries this fails (`make install-test` installs
    Debian's `postgresql` package) rather than skipping the tests that need it."""
    server = PostgresServer()
    unavailable = ""
    try:
        server.start()
    except PostgresUnavailable as error:
        unavailable = str(error)
    if unavailable:
        pytest.fail(unavailable, pytrace=False)
    try:
        yield server
    finally:
        server.stop()


_databases = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database of the session's PostgreSQL server: its `postgresql+psycopg://` URL."""
    return postgres_server.create_database(f"test_{next(_databases)}")
