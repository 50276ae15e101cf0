"""The configured models and their life cycle: declared, loading, ready, or failed (with why).

Models load on first use (or at start-up with ``preload: true``), once: concurrent
first requests wait for the same load. How a model is served follows its kind's shape
(``rerankd.kinds``): a local model's backend is loaded in a thread, warmed up and put behind the
scheduler; a remote one (an upstream provider) has nothing to load, its scorer being the provider's
HTTP client; a composite one (a hybrid) scores through the pool's other models. A failed load is
remembered with a message that says how to fix it, and retried by a request after ``load_retry_seconds``.

The rest of the server sees models through :meth:`ModelPool.views`: read-only descriptions, never
the scorers themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from rerankd.backends.base import BatchedBackend, DirectBackend
from rerankd.config import Settings
from rerankd.errors import ModelNotFound, ModelUnavailable
from rerankd.kinds import LocalKind, kind_of
from rerankd.redaction import remember
from rerankd.serving.batching import PassCost
from rerankd.serving.metrics import Metrics
from rerankd.serving.scheduler import BatchingScorer, DirectScorer, measure_pass_cost
from rerankd.spec import ModelSpec, Price
from rerankd.types import ModelStatus, ModelView, ScoreOptions, Scorer

__all__ = ["ModelEntry", "ModelPool"]

log = logging.getLogger(__name__)


@dataclass
class ModelEntry:
    spec: ModelSpec
    status: ModelStatus = "not_loaded"
    error: str | None = None
    failed_at: float = 0.0
    scorer: Scorer | None = None
    loading: asyncio.Task[Scorer] | None = None

    def view(self) -> ModelView:
        spec = self.spec
        return ModelView(
            name=spec.name,
            kind=spec.kind,
            aliases=spec.aliases,
            status=self.status,
            error=self.error,
            fallbacks=spec.fallbacks,
            settings=spec.summary(),
            loaded=self.scorer.info() if self.scorer is not None else None,
        )


def _budget(spec: ModelSpec, settings: Settings, backend: BatchedBackend) -> int:
    """Padded tokens per pass: the model's setting, else the server's, else the device's default."""
    return spec.batch_settings().max_batch_tokens or settings.max_batch_tokens or backend.batch_tokens


def _load_and_warm_up(
    kind: LocalKind[ModelSpec], spec: ModelSpec, settings: Settings
) -> tuple[BatchedBackend | DirectBackend, PassCost | None]:
    """Load, then run one tiny pass so the first request does not pay for lazy initialisation, and
    measure what a forward pass costs on this device (for packing; None for direct backends)."""
    backend = kind.load(spec)
    if not isinstance(backend, BatchedBackend):
        return backend, None
    backend.forward(backend.prepare("warm up", ["warm up"], ScoreOptions()).inputs)
    return backend, measure_pass_cost(backend, _budget(spec, settings, backend))


class ModelPool:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.entries: dict[str, ModelEntry] = {spec.name: ModelEntry(spec) for spec in settings.models}
        self._names: dict[str, str] = {name: spec.name for spec in settings.models for name in spec.names}
        for spec in settings.models:  # known before any call, so that no text or log line ever shows them
            remember(*spec.secrets())

    def entry(self, name: str) -> ModelEntry:
        canonical = self._names.get(name)
        if canonical is None:
            available = ", ".join(sorted(self.entries)) or "(none configured)"
            raise ModelNotFound(f"model '{name}' is not served here; available models: {available}")
        return self.entries[canonical]

    def canonical(self, name: str) -> str | None:
        """The configured name of a model name or alias; None if there is no such model."""
        return self._names.get(name)

    def price_of(self, name: str) -> Price | None:
        canonical = self._names.get(name)
        return self.entries[canonical].spec.price if canonical else None

    def chain_of(self, name: str) -> tuple[str, ...]:
        """The model and its fallbacks, in the order they are tried."""
        canonical = self._names.get(name)
        return (canonical, *self.entries[canonical].spec.fallbacks) if canonical else ()

    def views(self) -> list[ModelView]:
        """Every configured model, in config order."""
        return [entry.view() for entry in self.entries.values()]

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
                except ModelUnavailable:
                    pass  # logged, with its traceback, where it failed

    async def _load(self, entry: ModelEntry) -> Scorer:
        spec = entry.spec
        kind = kind_of(spec)
        entry.status = "loading"
        began = time.perf_counter()
        log.info("loading model %r (%s from %s)", spec.name, spec.kind, spec.described())
        try:
            cost = None
            if kind.shape == "composite":
                scorer: Scorer = kind.load(spec, self.scorer)
            elif kind.shape == "remote":
                scorer = kind.load(spec)
            else:
                backend, cost = await asyncio.to_thread(_load_and_warm_up, kind, spec, self.settings)
                scorer = self._local_scorer(spec, backend, cost)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
            entry.status, entry.failed_at = "failed", time.monotonic()
            entry.error = (
                f"model '{spec.name}' cannot be loaded from {spec.described()}: {reason}. "
                f"To fix: {spec.load_hint(exc)}."
            )
            # Once, with the traceback: the first line rarely says where a load went wrong — but for files
            # that are not there (a folder, a hub the machine cannot reach), where the message says it all.
            log.error("%s", entry.error, exc_info=None if isinstance(exc, FileNotFoundError) else exc)
            raise ModelUnavailable(entry.error) from exc
        finally:
            entry.loading = None
        entry.scorer = scorer
        entry.status, entry.error = "ready", None
        log.info(
            "model %r ready in %.1fs%s",
            spec.name,
            time.perf_counter() - began,
            f"; a forward pass costs {cost.describe()}" if cost else "",
        )
        return scorer

    def _local_scorer(
        self, spec: ModelSpec, backend: BatchedBackend | DirectBackend, cost: PassCost | None
    ) -> BatchingScorer | DirectScorer:
        if isinstance(backend, BatchedBackend):
            return BatchingScorer(
                spec.name,
                backend,
                max_batch_tokens=_budget(spec, self.settings, backend),
                max_batch_size=self.settings.max_batch_size,
                max_queue_pairs=self.settings.max_queue_pairs,
                max_queue_seconds=self.settings.max_queue_seconds,
                batch_overhead=cost or PassCost.in_tokens(),
                max_pass_seconds=self.settings.max_pass_seconds,
                observer=self.metrics.batch_observer(spec.name),
                # Off unless the entry sets cache_mb; keyed by every setting of the entry (and precision).
                cache_bytes=spec.batch_settings().cache_bytes,
                cache_identity=spec.model_dump_json(),
                cache_observer=self.metrics.cache_observer(spec.name),
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
