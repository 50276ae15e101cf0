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
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from rerankd.backends.base import BatchedBackend, DirectBackend
from rerankd.backends.threads import default_threads, use_threads
from rerankd.config import Settings
from rerankd.errors import ModelNotFound, ModelUnavailable
from rerankd.kinds import LocalKind, kind_of
from rerankd.redaction import remember
from rerankd.serving.batching import PassCost
from rerankd.serving.layout import choose_layout
from rerankd.serving.metrics import Metrics
from rerankd.serving.scheduler import BatchingScorer, DirectScorer, measure_pass_cost
from rerankd.spec import ModelSpec, Price
from rerankd.types import ModelStatus, ModelView, ScoreOptions, Scorer, ThreadsLayout

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


@dataclass(frozen=True, slots=True)
class _Loaded:
    backend: BatchedBackend | DirectBackend
    cost: PassCost | None = None  # batched backends: what a pass costs, in their layout
    layout: ThreadsLayout | None = None  # batched backends: their workers and threads


def _load_and_warm_up(kind: LocalKind[ModelSpec], spec: ModelSpec, settings: Settings) -> _Loaded:
    """Load, then run one tiny pass so the first request does not pay for lazy initialisation, choose the
    threads layout (``threads_layout``; ``auto`` times the candidates) and measure what a forward pass
    costs on this device in that layout (for packing)."""
    # This thread may have been started after a parallel worker set 1 thread, which torch then gives
    # every new thread: loads, warm-ups and the single layout's timings use torch's own count.
    use_threads(default_threads())
    backend = kind.load(spec)
    if not isinstance(backend, BatchedBackend):
        return _Loaded(backend)
    backend.forward(backend.prepare("warm up", ["warm up"], ScoreOptions()).inputs)
    budget = _budget(spec, settings, backend)
    layout = choose_layout(backend, settings.threads_layout, budget)
    return _Loaded(backend, measure_pass_cost(backend, budget, layout=layout), layout)


# Settings of an entry that change what is served but not the loaded model: a reload applies them in place.
_IN_PLACE = {"aliases", "price", "fallbacks", "preload", "max_retries"}


def _same_model(old: ModelSpec, new: ModelSpec) -> bool:
    return type(old) is type(new) and old.model_dump(exclude=_IN_PLACE) == new.model_dump(exclude=_IN_PLACE)


@dataclass(frozen=True, slots=True)
class Reconfigured:
    """What a reload changed: models added, models whose loaded part changes (served by their old
    version until the new one is ready), models removed (drained, then closed), and models kept (their
    prices, aliases and fallbacks applied in place)."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    kept: tuple[str, ...]


class ModelPool:
    def __init__(self, settings: Settings, metrics: Metrics, *, tracebacks: bool = True) -> None:
        self.settings = settings
        # A server logs a failed load with its traceback (nobody else sees it); the Python API raises it
        # to its caller, who has the traceback already, and logs only the line.
        self.tracebacks = tracebacks
        self.metrics = metrics
        self.entries: dict[str, ModelEntry] = {spec.name: ModelEntry(spec) for spec in settings.models}
        self._names: dict[str, str] = {name: spec.name for spec in settings.models for name in spec.names}
        self._background: set[asyncio.Task[None]] = set()
        for spec in settings.models:  # known before any call, so that no text or log line ever shows them
            remember(*spec.secrets())

    def reconfigure(self, settings: Settings) -> Reconfigured:
        """Serve ``settings``' models from the next call on. A model whose loaded part is unchanged keeps
        its scorer (new price, aliases, fallbacks in place); a changed one is loaded in the background and
        takes over once ready (its old version serves until then, and keeps it if the load fails); a
        removed one finishes its queued work and is closed; a new one loads on first use, or now if
        ``preload``. Calls in flight finish on the scorer they started on."""
        old = self.entries
        entries: dict[str, ModelEntry] = {}
        added: list[str] = []
        changed: list[str] = []
        kept: list[str] = []
        replacing: list[ModelEntry] = []
        for spec in settings.models:
            remember(*spec.secrets())
            previous = old.get(spec.name)
            if previous is not None and _same_model(previous.spec, spec):
                previous.spec = spec
                entries[spec.name] = previous
                kept.append(spec.name)
            elif previous is not None and previous.scorer is not None:
                entries[spec.name] = previous  # the old version serves until the new one is ready
                replacing.append(ModelEntry(spec))
                changed.append(spec.name)
            else:
                entries[spec.name] = ModelEntry(spec)
                (changed if previous is not None else added).append(spec.name)
        removed = [name for name in old if name not in entries]
        retired = [entry for name, entry in old.items() if entries.get(name) is not entry]
        self.settings, self.entries = settings, entries
        self._names = {name: spec.name for spec in settings.models for name in spec.names}
        for entry in retired:
            self._track(self._retire(entry))
        for fresh in replacing:
            self._track(self._take_over(fresh))
        self._track(self.preload())
        return Reconfigured(tuple(added), tuple(changed), tuple(removed), tuple(kept))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)  # kept until done: the loop holds tasks only weakly
        task.add_done_callback(self._background.discard)

    async def _take_over(self, fresh: ModelEntry) -> None:
        """Load a changed model's new version, then put it in place of the old one, which is retired."""
        try:
            await self._load(fresh)
        except ModelUnavailable:
            log.error("model %r keeps its previous version: the new one failed to load", fresh.spec.name)
            return
        current = self.entries.get(fresh.spec.name)
        if current is None:  # removed by a later reload meanwhile
            await self._retire(fresh)
            return
        fresh.spec = current.spec if _same_model(current.spec, fresh.spec) else fresh.spec
        self.entries = {**self.entries, fresh.spec.name: fresh}
        await self._retire(current)

    async def _retire(self, entry: ModelEntry) -> None:
        """Close a model no longer served once the work it admitted is done (at most the request
        deadline: what is still queued then is answered by the deadline anyway)."""
        if entry.loading is not None:
            with contextlib.suppress(Exception):
                await entry.loading
        scorer = entry.scorer
        if scorer is None:
            return
        if not hasattr(scorer, "pending"):
            # An upstream counts no queue: its calls in flight end by their deadline at the latest.
            await asyncio.sleep(self.settings.request_timeout)
        waited = 0.0
        while getattr(scorer, "pending", 0) and waited < self.settings.request_timeout:
            await asyncio.sleep(0.05)
            waited += 0.05
        await scorer.close()
        entry.scorer, entry.status = None, "not_loaded"

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
            cost, layout = None, None
            if kind.shape == "composite":
                scorer: Scorer = kind.load(spec, self.scorer)
            elif kind.shape == "remote":
                scorer = kind.load(spec)
            else:
                loaded = await asyncio.to_thread(_load_and_warm_up, kind, spec, self.settings)
                cost, layout = loaded.cost, loaded.layout
                scorer = self._local_scorer(spec, loaded.backend, cost, layout)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
            entry.status, entry.failed_at = "failed", time.monotonic()
            entry.error = (
                f"model '{spec.name}' cannot be loaded from {spec.described()}: {reason}. "
                f"To fix: {spec.load_hint(exc)}."
            )
            # Once, with the traceback: the first line rarely says where a load went wrong — but for files
            # that are not there (a folder, a hub the machine cannot reach), where the message says it all.
            explained = isinstance(exc, FileNotFoundError) or not self.tracebacks
            log.error("%s", entry.error, exc_info=None if explained else exc)
            raise ModelUnavailable(entry.error) from exc
        finally:
            entry.loading = None
        entry.scorer = scorer
        entry.status, entry.error = "ready", None
        log.info(
            "model %r ready in %.1fs%s%s",
            spec.name,
            time.perf_counter() - began,
            f"; threads layout {layout.describe()}" if layout else "",
            f"; a forward pass costs {cost.describe()}" if cost else "",
        )
        return scorer

    def _local_scorer(
        self,
        spec: ModelSpec,
        backend: BatchedBackend | DirectBackend,
        cost: PassCost | None,
        layout: ThreadsLayout | None,
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
                layout=layout,
            )
        return DirectScorer(
            spec.name,
            backend,
            max_queue_pairs=self.settings.max_queue_pairs,
            max_queue_seconds=self.settings.max_queue_seconds,
        )

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        for entry in self.entries.values():
            if entry.scorer is not None:
                await entry.scorer.close()
                entry.scorer, entry.status = None, "not_loaded"
