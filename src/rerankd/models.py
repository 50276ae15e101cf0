"""The configured models and their life cycle: declared, loading, ready, or failed (with why).

Models load on first use (or at start-up with ``preload: true``), in a thread, once: concurrent
first requests wait for the same load. Upstream models have nothing to load: their scorer is the
HTTP client of the provider. A failed load is remembered with a message that says how to
fix it, and retried by a request after ``load_retry_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from rerankd.backends import BatchedBackend, DirectBackend, load_backend
from rerankd.backends.sources import load_failure_hint
from rerankd.config import ModelSpec, Settings
from rerankd.errors import ModelNotFound, ModelUnavailable
from rerankd.metrics import Metrics
from rerankd.scheduler import BatchingScorer, DirectScorer, measure_batch_overhead
from rerankd.types import ModelStatus, ScoreOptions, Scorer
from rerankd.upstream import UpstreamScorer, make_upstream_scorer

__all__ = ["ModelEntry", "ModelPool"]

log = logging.getLogger(__name__)


@dataclass
class ModelEntry:
    spec: ModelSpec
    status: ModelStatus = "not_loaded"
    error: str | None = None
    failed_at: float = 0.0
    scorer: BatchingScorer | DirectScorer | UpstreamScorer | None = None
    loading: asyncio.Task[BatchingScorer | DirectScorer | UpstreamScorer] | None = None

    @property
    def circuit(self) -> dict[str, Any] | None:
        """An upstream model's circuit breaker state; None for local models."""
        return self.scorer.status() if isinstance(self.scorer, UpstreamScorer) else None


def _load_and_warm_up(spec: ModelSpec) -> tuple[BatchedBackend | DirectBackend, float]:
    """Load, then run one tiny pass so the first request does not pay for lazy initialisation, and
    measure what a forward pass costs beyond its tokens (for packing; 0 for direct backends)."""
    backend = load_backend(spec)
    if not isinstance(backend, BatchedBackend):
        return backend, 0.0
    backend.forward(backend.prepare("warm up", ["warm up"], ScoreOptions()).inputs)
    return backend, measure_batch_overhead(backend)


class ModelPool:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.entries: dict[str, ModelEntry] = {spec.name: ModelEntry(spec) for spec in settings.models}
        self._names: dict[str, str] = {}
        for spec in settings.models:
            for name in (spec.name, *spec.aliases):
                self._names[name] = spec.name

    def entry(self, name: str) -> ModelEntry:
        canonical = self._names.get(name)
        if canonical is None:
            available = ", ".join(sorted(self.entries)) or "(none configured)"
            raise ModelNotFound(f"model '{name}' is not served here; available models: {available}")
        return self.entries[canonical]

    async def scorer(self, name: str) -> Scorer:
        """The ready scorer for a model name or alias, loading it first if need be."""
        entry = self.entry(name)
        if entry.scorer is not None:
            return entry.scorer
        if entry.status == "failed" and time.monotonic() - entry.failed_at < self.settings.load_retry_seconds:
            raise ModelUnavailable(entry.error or f"model '{entry.spec.name}' failed to load")
        if entry.loading is None:
            entry.loading = asyncio.create_task(self._load(entry))
        return await asyncio.shield(entry.loading)

    async def preload(self) -> None:
        for entry in self.entries.values():
            if entry.spec.preload:
                try:
                    await self.scorer(entry.spec.name)
                except ModelUnavailable as exc:
                    log.error("%s", exc.message)

    async def _load(self, entry: ModelEntry) -> BatchingScorer | DirectScorer | UpstreamScorer:
        spec = entry.spec
        entry.status = "loading"
        began = time.perf_counter()
        log.info("loading model %r (%s from %s)", spec.name, spec.kind, spec.source or "built in")
        if spec.kind == "upstream":  # nothing to load: the client connects on first call
            entry.scorer = make_upstream_scorer(spec)
            entry.status, entry.loading = "ready", None
            return entry.scorer
        try:
            backend, overhead = await asyncio.to_thread(_load_and_warm_up, spec)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
            entry.status, entry.failed_at = "failed", time.monotonic()
            entry.error = (
                f"model '{spec.name}' cannot be loaded from {spec.source or spec.kind}: {reason}. "
                f"To fix: {load_failure_hint(spec, exc)}."
            )
            log.error("%s", entry.error)
            raise ModelUnavailable(entry.error) from exc
        finally:
            entry.loading = None
        entry.scorer = self._make_scorer(spec, backend, overhead)
        entry.status, entry.error = "ready", None
        log.info(
            "model %r ready in %.1fs (a forward pass costs %.0f tokens beyond its own)",
            spec.name,
            time.perf_counter() - began,
            overhead,
        )
        return entry.scorer

    def _make_scorer(
        self, spec: ModelSpec, backend: BatchedBackend | DirectBackend, overhead: float
    ) -> BatchingScorer | DirectScorer:
        if isinstance(backend, BatchedBackend):
            return BatchingScorer(
                spec.name,
                backend,
                max_batch_tokens=(
                    spec.max_batch_tokens or self.settings.max_batch_tokens or backend.batch_tokens
                ),
                max_batch_size=self.settings.max_batch_size,
                max_queue_pairs=self.settings.max_queue_pairs,
                max_queue_seconds=self.settings.max_queue_seconds,
                batch_overhead=overhead,
                observer=self.metrics.batch_observer(spec.name),
            )
        return DirectScorer(
            spec.name,
            backend,
            max_queue_pairs=self.settings.max_queue_pairs,
            max_queue_seconds=self.settings.max_queue_seconds,
        )

    async def close(self) -> None:
        for entry in self.entries.values():
            if entry.scorer is not None:
                await entry.scorer.close()
                entry.scorer, entry.status = None, "not_loaded"
