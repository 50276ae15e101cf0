"""The model pool: names and aliases, one load for concurrent first requests, failures and retry."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest

from rerankd.backends.base import BatchedBackend, DirectBackend
from rerankd.backends.specs import Bm25Spec, TransformerSpec
from rerankd.config import Settings
from rerankd.errors import ModelNotFound, ModelUnavailable
from rerankd.kinds import LocalKind, ModelKind
from rerankd.serving import pool as models_module
from rerankd.serving.metrics import Metrics
from rerankd.serving.pool import ModelPool
from rerankd.serving.scheduler import BatchingScorer, DirectScorer
from rerankd.spec import ModelSpec
from rerankd.types import ScoreOptions


def pool_of(*specs: ModelSpec, **settings: float) -> ModelPool:
    return ModelPool(Settings(models=list(specs), **settings), Metrics())  # type: ignore[arg-type]


async def test_names_and_aliases_resolve_to_one_entry() -> None:
    pool = pool_of(Bm25Spec(name="bm25", kind="bm25", aliases=("rerank-english-v3.0",)))
    first = await pool.scorer("bm25")
    assert await pool.scorer("rerank-english-v3.0") is first
    assert isinstance(first, DirectScorer)
    with pytest.raises(ModelNotFound, match="available models: bm25"):
        await pool.scorer("nope")
    await pool.close()


async def test_concurrent_first_requests_share_one_load(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = models_module.kind_of

    def counting(spec: ModelSpec) -> ModelKind:
        kind = real(spec)
        assert isinstance(kind, LocalKind)

        def load(spec: ModelSpec) -> BatchedBackend | DirectBackend:
            calls.append(spec.name)
            return kind.load(spec)

        return dataclasses.replace(kind, load=load)

    monkeypatch.setattr(models_module, "kind_of", counting)
    pool = pool_of(TransformerSpec(name="ce", kind="cross-encoder", source=str(tiny_bert)))
    scorers = await asyncio.gather(*(pool.scorer("ce") for _ in range(5)))
    assert calls == ["ce"]
    assert all(s is scorers[0] for s in scorers) and isinstance(scorers[0], BatchingScorer)
    assert pool.entries["ce"].status == "ready"
    await pool.close()


async def test_failed_load_is_remembered_then_retried(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    pool = pool_of(
        TransformerSpec(name="ce", kind="cross-encoder", source=str(missing)), load_retry_seconds=3600
    )
    with pytest.raises(ModelUnavailable, match="To fix: check that") as info:
        await pool.scorer("ce")
    assert str(missing) in info.value.message
    entry = pool.entries["ce"]
    assert entry.status == "failed" and entry.error == info.value.message
    with pytest.raises(ModelUnavailable):  # within the retry delay: answered from memory
        await pool.scorer("ce")
    assert entry.loading is None
    pool.settings = pool.settings.model_copy(update={"load_retry_seconds": 0})
    with pytest.raises(ModelUnavailable):  # after it: a new attempt
        await pool.scorer("ce")
    assert entry.status == "failed"


async def test_a_failed_load_is_logged_once_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json", encoding="utf-8")
    pool = pool_of(
        TransformerSpec(name="ce", kind="cross-encoder", source=str(tmp_path / "broken"), preload=True)
    )
    with caplog.at_level(logging.ERROR, logger="rerankd.serving.pool"):
        await pool.preload()
    [record] = [r for r in caplog.records if r.name == "rerankd.serving.pool"]
    assert record.getMessage().startswith("model 'ce' cannot be loaded from")
    assert record.exc_info is not None  # the whole traceback, not only the first line
    assert "Traceback" in caplog.text


async def test_cache_mb_gives_a_model_an_output_cache_with_metrics(tiny_bert: Path) -> None:
    cached = TransformerSpec(name="cached", kind="cross-encoder", source=str(tiny_bert), cache_mb=0.5)
    plain = TransformerSpec(name="plain", kind="cross-encoder", source=str(tiny_bert))
    pool = pool_of(cached, plain)
    scorer = await pool.scorer("cached")
    for _ in range(2):
        await scorer.score("a query", ("a document", "another document"), ScoreOptions())
    info = scorer.info().cache
    assert info is not None and info.capacity_bytes == 2**19 and (info.hits, info.misses) == (2, 2)
    assert pool.views()[0].loaded == scorer.info()
    hits = pool.metrics.registry.get_sample_value("rerankd_cache_hits_total", {"model": "cached"})
    assert hits == 2
    assert (await pool.scorer("plain")).info().cache is None  # off by default
    await pool.close()
