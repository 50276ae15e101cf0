"""Scorers for local models: a queue limit, tokenization off the event loop, dynamic batching.

``BatchingScorer`` serves a batched backend (cross- and bi-encoders):

1. the queue limit: a request's inputs are counted against ``max_queue_pairs``, and the queue's estimated
   work (pending inputs / measured rate) against ``max_queue_seconds``; over either bound it gets
   :class:`~rerankd.errors.Overloaded` (HTTP 429 with Retry-After) at once, before any work;
2. tokenization runs on the scorer's tokenizer thread (so it overlaps the forward pass); the request's
   exact size then goes to the gateway's ``admit`` (when given), which may refuse it before any work;
3. the job joins a FIFO queue served by the model's single worker thread, which takes a window of
   pending inputs from the oldest jobs, sorts them by length across requests, packs them by token
   budget and the measured cost of a pass (:func:`rerankd.serving.batching.pack`, :func:`measure_pass_cost`)
   and runs the forward passes;
4. a job whose client went away (its future was cancelled) is dropped before its inputs are computed,
   and so is a job still queued at its request's deadline (:mod:`rerankd.deadline`): it is answered
   :class:`~rerankd.errors.DeadlineExceeded` (503 with Retry-After) at the deadline, uncomputed.

The queue limit also refuses (429) a request that the queue's estimated work would keep past its
deadline. The estimate's rate is measured as inputs computed per second of the worker's busy wall time
(packing, the passes, and whatever else takes the cores meanwhile), so it follows the speed the model
really has now. It is the model's own bound; the gateway's admission of a call against its key's
limits and budget is ``admit`` (step 2).

``DirectScorer`` serves backends that score a whole request at once (bm25) on one thread, with the
same queue limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rerankd import deadline as deadlines
from rerankd import tracing
from rerankd.backends.base import BatchedBackend, DirectBackend, DirectScores, Encoded, Prepared
from rerankd.backends.threads import in_step, use_threads
from rerankd.errors import DeadlineExceeded, ModelUnavailable, Overloaded, RerankdError, TransientFailure
from rerankd.serving.batching import DEFAULT_BATCH_OVERHEAD, PassCost, fit_pass_cost, pack, padded_tokens
from rerankd.serving.cache import Lookup, OutputCache
from rerankd.types import (
    Admit,
    BatchStats,
    CallSize,
    ScoreOptions,
    ScoreResult,
    ScorerInfo,
    Span,
    ThreadsLayout,
    Timings,
)

__all__ = ["BatchObserver", "BatchingScorer", "DirectScorer", "measure_pass_cost"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# The worker sorts and packs this many budgets' worth of pending tokens at a time: larger windows
# pad less, smaller ones let a newly arrived request start sooner.
WINDOW_BUDGETS = 4


# The queue limit's rate is measured over about this many seconds of the worker's latest busy time.
RATE_HORIZON = 1.0

BatchObserver = Callable[[BatchStats], None]


def measure_pass_cost(
    backend: BatchedBackend,
    budget: int,
    repeats: int = 2,
    clock: Callable[[], float] = time.perf_counter,
    layout: ThreadsLayout | None = None,
) -> PassCost:
    """What a forward pass of this model costs on this device, in this precision, in seconds.

    Times passes over a few shapes (1 row, and a sixteenth and a quarter of the budget's rows, at about
    32, 128 and 512 tokens or the model's window; best of ``repeats`` each, read from ``clock``) and fits
    a :class:`~rerankd.serving.batching.PassCost`. Falls back to the bare default overhead (in tokens) when
    timing noise makes the fit meaningless.

    With a ``layout`` of several workers, the passes are timed as they run there: each shape in every
    worker's thread at once (each on ``layout.threads`` threads), so that a pass's time includes sharing
    the memory and caches with the others; one repeat per worker, so the load takes no longer.
    """
    shapes: list[list[Encoded]] = []
    for target in sorted({min(length, backend.max_length) for length in (32, 128, 512)}):
        # A document of about `target` tokens, cut to fit: real inputs, with the model's own prompt.
        document = " ".join(["the boundary layer separates"] * target)
        options = ScoreOptions(long_documents="truncate_end", max_tokens_per_doc=max(1, target - 16))
        one = backend.prepare("warm up", [document], options).inputs[-1:]
        # A quarter of the budget already shows the per-token cost; full passes would slow every load.
        for rows in sorted({1, max(1, budget // len(one[0]) // 16), max(1, budget // len(one[0]) // 4)}):
            shapes.append(one * rows)
    if layout is None or layout.workers == 1:
        if layout is not None:
            use_threads(layout.threads)
        times = [_timed(backend, inputs, repeats, clock) for inputs in shapes]
    else:
        times = _timed_together(backend, shapes, layout, max(1, repeats // layout.workers), clock)
    samples = [(len(inputs), len(inputs[0]), seconds) for inputs, seconds in zip(shapes, times, strict=True)]
    return fit_pass_cost(samples) or PassCost.in_tokens()


def _timed(backend: BatchedBackend, inputs: list[Encoded], repeats: int, clock: Callable[[], float]) -> float:
    """The best of ``repeats`` passes over ``inputs``, in seconds."""
    times = []
    for _ in range(repeats):
        began = clock()
        backend.forward(inputs)
        times.append(clock() - began)
    return min(times)


def _timed_together(
    backend: BatchedBackend,
    shapes: list[list[Encoded]],
    layout: ThreadsLayout,
    repeats: int,
    clock: Callable[[], float],
) -> list[float]:
    """Each shape's best time when every worker of ``layout`` runs it at the same moment."""
    found: list[list[float]] = [[] for _ in shapes]

    def work(start: threading.Barrier) -> None:
        for index, inputs in enumerate(shapes):
            start.wait()  # the shapes go in step: no worker's pass runs alone
            found[index].append(_timed(backend, inputs, repeats, clock))

    in_step(layout, work, "measure")  # a failed pass fails the load, in the caller's thread
    return [min(times) for times in found]


def _size(prepared: Prepared, documents: int) -> CallSize:
    """A prepared request's exact usage: its tokens, and its inputs scored as the response counts them."""
    tokens = prepared.query_tokens + sum(prepared.document_tokens)
    return CallSize(tokens, sum(prepared.chunks) if prepared.chunks else documents)


class _QueueLimit:
    """Counts queued inputs against a bound and estimates when a rejected caller should retry."""

    def __init__(self, name: str, max_pending: int, max_wait: float) -> None:
        self.name = name
        self.max_pending = max_pending
        self.max_wait = max_wait
        self.pending = 0
        self._lock = threading.Lock()
        self._rate = 0.0  # inputs per busy second, over the latest RATE_HORIZON of busy time
        self._recent: deque[tuple[int, float]] = deque()  # (inputs, busy seconds) of the latest passes
        self._inputs = 0
        self._seconds = 0.0

    def enter(self, count: int) -> None:
        """Count ``count`` inputs in, or raise Overloaded: over the bounds, or (with the request's
        deadline set) when the queued work ahead and its own would not finish by the deadline."""
        left = deadlines.left()
        with self._lock:
            # An empty queue always takes a request, so one request larger than the bounds is still served.
            if not self.pending:
                self.pending += count
                return
            wait = (self.pending + count) / self._rate if self._rate > 0 else 0.0
            if self.pending + count > self.max_pending or wait > self.max_wait:
                retry_after = self._retry_after()
                raise Overloaded(
                    f"model '{self.name}' is busy: {self.pending} inputs queued (about {wait:.1f}s of work; "
                    f"limits {self.max_pending} inputs, {self.max_wait:g}s); retry after {retry_after}s",
                    retry_after=retry_after,
                )
            if left is not None and wait > left:
                retry_after = self._retry_after()
                raise Overloaded(
                    f"model '{self.name}' is busy: {self.pending} inputs queued, about {wait:.1f}s of work "
                    f"with this request's, and its deadline is {max(0.0, left):.1f}s away; retry after "
                    f"{retry_after}s",
                    retry_after=retry_after,
                )
            self.pending += count

    def retry_after(self) -> int:
        """Whole seconds until the queued work is done, as measured (1 to 60)."""
        with self._lock:
            return self._retry_after()

    def _retry_after(self) -> int:
        return min(60, max(1, math.ceil(self.pending / self._rate))) if self._rate > 0 else 1

    def release(self, count: int) -> None:
        with self._lock:
            self.pending -= count

    def observe(self, inputs: int, seconds: float) -> None:
        """``inputs`` computed in ``seconds`` of busy time. Older passes are forgotten once the newer
        ones fill the horizon, so a model that slows down (or speeds up) is estimated at its new speed
        within about a second of work, however wrong the estimate was."""
        if seconds <= 0:
            return
        with self._lock:
            self._recent.append((inputs, seconds))
            self._inputs += inputs
            self._seconds += seconds
            while len(self._recent) > 1 and self._seconds - self._recent[0][1] >= RATE_HORIZON:
                old_inputs, old_seconds = self._recent.popleft()
                self._inputs -= old_inputs
                self._seconds -= old_seconds
            self._rate = self._inputs / self._seconds


@dataclass(eq=False)
class _Job:
    inputs: list[Encoded]
    future: asyncio.Future[list[Any]]
    loop: asyncio.AbstractEventLoop
    enqueued: float
    outputs: list[Any] = field(default_factory=list)
    cursor: int = 0  # next input the worker has not taken yet
    done: int = 0
    started: float | None = None
    inference: float = 0.0
    failed: bool = False
    deadline: float = math.inf  # on time.monotonic(): past it, the inputs not yet taken are dropped
    parent: tracing.Parent | None = None  # the request's place in its trace (tracing on), for the workers

    def __post_init__(self) -> None:
        self.outputs = [None] * len(self.inputs)

    @property
    def gone(self) -> bool:
        return self.failed or self.future.done()

    def resolve(self, result: list[Any] | BaseException) -> None:
        self.loop.call_soon_threadsafe(_settle, self.future, result)

    def late(self, now: float) -> bool:
        return not self.gone and now >= self.deadline


def _trace_queue(job: _Job) -> None:
    """A job's wait in the queue, as a span of its request: until its first pass, or until it ended
    uncomputed (past its deadline, or its client gone)."""
    error: BaseException | str | None = None
    if job.started is None:
        answered = job.future.done() and not job.future.cancelled()
        error = (job.future.exception() if answered else None) or "cancelled"
    ended = job.started if job.started is not None else time.perf_counter()
    attributes: dict[str, tracing.Attribute] = {"rerankd.inputs": len(job.inputs)}
    tracing.record(
        "rerankd.queue", job.enqueued, ended, parent=job.parent, attributes=attributes, error=error
    )


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():  # cancelled meanwhile: the client went away
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class BatchingScorer:
    """Shares forward passes of one model among all concurrent requests."""

    def __init__(
        self,
        name: str,
        backend: BatchedBackend,
        *,
        max_batch_tokens: int,
        max_batch_size: int,
        max_queue_pairs: int,
        max_queue_seconds: float = math.inf,
        batch_overhead: PassCost | float = DEFAULT_BATCH_OVERHEAD,
        max_pass_seconds: float = math.inf,
        observer: BatchObserver | None = None,
        cache_bytes: int = 0,
        cache_identity: str = "",
        cache_observer: Callable[[int, int, int], None] | None = None,
        layout: ThreadsLayout | None = None,
    ) -> None:
        self.name = name
        self.backend = backend
        # Worker threads and their OpenMP threads; without a layout, one worker on torch's own threads.
        self.layout = layout
        # Outputs per input, keyed by its tokens, the model's identity (every setting of its entry) and
        # precision; only the misses reach the worker. Off (None) unless the model sets ``cache_mb``.
        self._cache = (
            OutputCache(cache_bytes, f"{cache_identity}\0{backend.precision}") if cache_bytes > 0 else None
        )
        self._cache_observer = cache_observer
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.batch_overhead = batch_overhead
        # A bound on one pass's predicted seconds needs a cost measured in seconds.
        self.max_pass_cost = max_pass_seconds if isinstance(batch_overhead, PassCost) else math.inf
        self._queue_limit = _QueueLimit(name, max_queue_pairs, max_queue_seconds)
        self._observer = observer
        self._tokenizer = ThreadPoolExecutor(1, thread_name_prefix=f"tokenize-{name}")
        self._wakeup = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._stopped = False
        # The batches of the window packed last, not yet taken by a worker, with the time that window was
        # taken; the worker that finds none takes and packs the next window, the others wait for it.
        self._batches: deque[tuple[list[tuple[_Job, int]], float]] = deque()
        self._packing = threading.Lock()
        self._finishing = threading.Lock()  # a job's outputs and counts, written by the workers
        workers = layout.workers if layout is not None else 1
        self._workers = [
            threading.Thread(target=self._serve, name=f"model-{name}-{n}", daemon=True)
            for n in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    @property
    def pending(self) -> int:
        return self._queue_limit.pending

    def info(self) -> ScorerInfo:
        return ScorerInfo(
            precision=self.backend.precision,
            max_length=self.backend.max_length,
            batch_tokens=self.max_batch_tokens,
            cache=self._cache.stats() if self._cache is not None else None,
            layout=self.layout,
        )

    async def score(
        self, query: str, documents: tuple[str, ...], options: ScoreOptions, admit: Admit | None = None
    ) -> ScoreResult:
        if self._stopped:
            raise ModelUnavailable(f"model '{self.name}' is shutting down")
        count = len(documents) + 1  # an upper bound of inputs (pairs, or query + documents)
        self._queue_limit.enter(count)
        held = count
        cache = self._cache

        def prepare() -> tuple[Prepared, Lookup | None]:  # on the tokenizer thread
            prepared = self.backend.prepare(query, documents, options)
            return prepared, cache.look_up(prepared.inputs) if cache is not None else None

        job: _Job | None = None
        try:
            loop = asyncio.get_running_loop()
            began = time.perf_counter()
            with tracing.span("rerankd.tokenize", {"rerankd.model": self.name}) as tokenizing:
                prepared, lookup = await loop.run_in_executor(self._tokenizer, prepare)
                tokenizing.set("rerankd.inputs", len(prepared.inputs))
                tokenizing.set("rerankd.tokens", _size(prepared, len(documents)).tokens)
                tokenizing.set("rerankd.cache.hits", lookup.hits if lookup is not None else None)
            tokenized = time.perf_counter()
            if admit is not None:  # the exact size is known now, and nothing is computed yet
                await admit(_size(prepared, len(documents)))
            todo = prepared.inputs
            if cache is not None and lookup is not None:
                todo = [prepared.inputs[index] for index in lookup.missing]
                if self._cache_observer is not None:
                    self._cache_observer(lookup.hits, lookup.misses, cache.lru.bytes)
                # Only the misses wait in the queue: the places of the hits are given back now.
                keep = min(held, len(todo))
                self._queue_limit.release(held - keep)
                held = keep
            if todo:
                job = _Job(todo, loop.create_future(), loop, time.perf_counter(), parent=tracing.here())
                self._enqueue(job)
            computed = await job.future if job is not None else []
        finally:
            self._queue_limit.release(held)
            if job is not None and job.parent is not None:
                _trace_queue(job)
        outputs = computed
        if cache is not None and lookup is not None:
            outputs = cache.complete(lookup, computed)
            if self._cache_observer is not None:
                self._cache_observer(0, 0, cache.lru.bytes)
        started = job.started if job is not None and job.started is not None else tokenized
        spans = prepared.spans(outputs) if options.return_spans else None
        return ScoreResult(
            scores=tuple(prepared.combine(outputs)),
            activation=self.backend.activation,
            query_tokens=prepared.query_tokens,
            document_tokens=tuple(prepared.document_tokens),
            timings=Timings(
                tokenization=tokenized - began,
                queue=started - tokenized,
                inference=job.inference if job is not None else 0.0,
            ),
            document_chunks=tuple(prepared.chunks or ()),
            spans=tuple(spans or ()),
        )

    async def close(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify_all()
        for worker in self._workers:
            await asyncio.to_thread(worker.join, 30)
        self._tokenizer.shutdown(wait=False, cancel_futures=True)

    def _enqueue(self, job: _Job) -> None:
        """Queue a job (on the event loop, in its request's context) to be answered by its deadline."""
        deadline = deadlines.current()
        if deadline is not None:
            job.deadline = deadline
            # Answered at the deadline even while the worker is inside a long pass; the worker then
            # finds the job gone and computes none of its inputs still queued.
            timer = job.loop.call_later(max(0.0, deadline - time.monotonic()), self._expire, job)
            job.future.add_done_callback(lambda _: timer.cancel())
        with self._wakeup:
            self._jobs.append(job)
            self._wakeup.notify()

    def _expire(self, job: _Job) -> None:
        """Answer a job past its deadline (on the event loop; a no-op once it has its answer)."""
        _settle(job.future, self._late_error(job))

    def _late_error(self, job: _Job) -> DeadlineExceeded:
        retry_after = self._queue_limit.retry_after()
        return DeadlineExceeded(
            f"model '{self.name}' did not reach this request before its deadline: {job.done} of its "
            f"{len(job.inputs)} inputs were computed, the rest dropped; the model has about "
            f"{retry_after}s of work queued: retry after {retry_after}s",
            retry_after=retry_after,
        )

    # -- the worker thread -------------------------------------------------------------------

    def _drop_late(self, jobs: Iterable[_Job]) -> None:
        """Answer jobs past their deadline now, so that none of their inputs still queued is computed
        (the event loop's timer may not have run yet)."""
        now = time.monotonic()
        for job in jobs:
            if job.late(now):
                job.failed = True
                job.resolve(self._late_error(job))

    def _take_window(self) -> list[tuple[_Job, int]] | None:
        """Wait for work; take the oldest pending inputs, up to the window's token count."""
        with self._wakeup:
            self._drop_late(self._jobs)
            while not self._stopped and not any(not job.gone for job in self._jobs):
                self._jobs.clear()
                self._wakeup.wait()
                self._drop_late(self._jobs)
            if self._stopped:
                for job in self._jobs:
                    job.resolve(ModelUnavailable(f"model '{self.name}' is shutting down"))
                self._jobs.clear()
                return None
            limit = self.max_batch_tokens * WINDOW_BUDGETS
            window: list[tuple[_Job, int]] = []
            tokens = 0
            for job in self._jobs:
                while not job.gone and job.cursor < len(job.inputs) and tokens < limit:
                    window.append((job, job.cursor))
                    tokens += len(job.inputs[job.cursor])
                    job.cursor += 1
            # Jobs that were fully taken, or whose client went away, leave the queue.
            self._jobs = deque(job for job in self._jobs if not job.gone and job.cursor < len(job.inputs))
            return window

    def _next_batch(self) -> tuple[list[tuple[_Job, int]], float] | None:
        """The next batch to compute, and when its window was taken: one of the window packed last or,
        when none is left, of the next window, taken (waiting for work) and packed here. None when the
        scorer stops."""
        with self._packing:
            while not self._batches:
                window = self._take_window()
                if window is None:
                    return None
                taken = time.perf_counter()
                lengths = [len(job.inputs[index]) for job, index in window]
                budget, rows = self.max_batch_tokens, self.max_batch_size
                for batch in pack(lengths, budget, rows, self.batch_overhead, self.max_pass_cost):
                    self._batches.append(([window[k] for k in batch], taken))
            return self._batches.popleft()

    def _serve(self) -> None:
        if self.layout is not None:
            use_threads(self.layout.threads)  # per thread: each worker sets its own
        # The rate the queue limit estimates with is inputs computed per second of busy wall time: each pass
        # counts from the end of this worker's one before, or from when its window was taken if that is
        # later (the worker waited for work), so the time spent between passes (packing, answering, a
        # neighbour holding the cores) slows the estimate as it slows the queue. Each of several workers
        # computes its share of the model's inputs: its rate times their number is the model's (the
        # estimate matters when the queue is long, and then every worker is busy).
        workers = len(self._workers)
        busy_since = time.perf_counter()
        while (next_batch := self._next_batch()) is not None:
            batch, taken = next_batch
            busy_since = max(busy_since, taken)
            self._drop_late(dict.fromkeys(job for job, _ in batch))
            live = [(job, index) for job, index in batch if not job.gone]
            if live:
                self._run_batch(live)
                now = time.perf_counter()
                self._queue_limit.observe(len(live) * workers, now - busy_since)
                busy_since = now

    def _trace_pass(
        self,
        entries: Sequence[tuple[_Job, int]],
        jobs: list[_Job],
        began: float,
        error: Exception | None = None,
    ) -> None:
        """A pass serves rows of several requests: each traced one gets a span of it in its own trace, with
        the whole pass's size and its own rows (on the worker thread, under the request's attempt)."""
        traced = [job for job in jobs if job.parent is not None]
        if not traced:
            return
        ended = time.perf_counter()
        lengths = [len(job.inputs[index]) for job, index in entries]
        batch: dict[str, tracing.Attribute] = {
            "rerankd.model": self.name,
            "rerankd.batch.rows": len(entries),
            "rerankd.batch.requests": len(jobs),
            "rerankd.batch.tokens": sum(lengths),
            "rerankd.batch.padded_tokens": padded_tokens(lengths, [range(len(lengths))]),
        }
        for job in traced:
            rows = sum(1 for owner, _ in entries if owner is job)
            attributes = {**batch, "rerankd.rows": rows}
            tracing.record(
                "rerankd.forward", began, ended, parent=job.parent, attributes=attributes, error=error
            )

    def _run_batch(self, entries: Sequence[tuple[_Job, int]]) -> None:
        jobs = list(dict.fromkeys(job for job, _ in entries))
        began = time.perf_counter()
        with self._finishing:
            for job in jobs:
                if job.started is None:
                    job.started = began
        try:
            outputs = self.backend.forward([job.inputs[index] for job, index in entries])
        except Exception as exc:  # a failed pass fails its requests, never the worker
            log.exception("forward pass of model %r failed", self.name)
            error = TransientFailure(f"model '{self.name}' failed while scoring: {type(exc).__name__}: {exc}")
            self._trace_pass(entries, jobs, began, error)
            for job in jobs:
                job.failed = True
                job.resolve(error)
            return
        seconds = time.perf_counter() - began
        self._trace_pass(entries, jobs, began)
        with self._finishing:  # two workers may finish passes of the same job at once
            for (job, index), output in zip(entries, outputs, strict=True):
                job.outputs[index] = output
                job.done += 1
            for job in jobs:
                job.inference += seconds
                if job.done == len(job.inputs):
                    job.resolve(job.outputs)
        lengths = [len(job.inputs[index]) for job, index in entries]
        if self._observer is not None:
            stats = BatchStats(
                rows=len(entries),
                requests=len(jobs),
                real_tokens=sum(lengths),
                padded_tokens=padded_tokens(lengths, [range(len(lengths))]),
                seconds=seconds,
            )
            self._observer(stats)


class DirectScorer:
    """Runs a direct backend on one thread per model, with the same queue limit."""

    def __init__(
        self, name: str, backend: DirectBackend, *, max_queue_pairs: int, max_queue_seconds: float = math.inf
    ) -> None:
        self.name = name
        self.backend = backend
        self._queue_limit = _QueueLimit(name, max_queue_pairs, max_queue_seconds)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"model-{name}")

    @property
    def pending(self) -> int:
        return self._queue_limit.pending

    def info(self) -> ScorerInfo:
        return ScorerInfo()

    async def score(
        self, query: str, documents: tuple[str, ...], options: ScoreOptions, admit: Admit | None = None
    ) -> ScoreResult:
        self._queue_limit.enter(len(documents))
        try:
            loop = asyncio.get_running_loop()
            began = time.perf_counter()
            try:
                # The backend scores the whole request in one call: its one pass.
                passed: dict[str, tracing.Attribute] = {
                    "rerankd.model": self.name,
                    "rerankd.rows": len(documents),
                    "rerankd.batch.rows": len(documents),
                    "rerankd.batch.requests": 1,
                }
                with tracing.span("rerankd.forward", passed) as forward:
                    result = await self._run(loop, query, documents, options)
                    forward.set("rerankd.batch.tokens", result.query_tokens + sum(result.document_tokens))
            except RerankdError:
                raise
            except Exception as exc:
                log.exception("model %r failed", self.name)
                raise TransientFailure(f"model '{self.name}' failed while scoring: {exc}") from exc
            seconds = time.perf_counter() - began
        finally:
            self._queue_limit.release(len(documents))
        self._queue_limit.observe(len(documents), seconds)
        if admit is not None:  # a direct backend counts as it scores: admitted before its answer is used
            await admit(CallSize(result.query_tokens + sum(result.document_tokens), len(documents)))
        return ScoreResult(
            scores=tuple(result.scores),
            activation=self.backend.activation,
            query_tokens=result.query_tokens,
            document_tokens=tuple(result.document_tokens),
            timings=Timings(inference=seconds),
            # A direct backend scores whole documents: the match is the whole text.
            spans=tuple(
                Span(0, len(document), score)
                for document, score in zip(documents, result.scores, strict=True)
            )
            if options.return_spans
            else (),
        )

    async def _run(
        self, loop: asyncio.AbstractEventLoop, query: str, documents: tuple[str, ...], options: ScoreOptions
    ) -> DirectScores:
        """The backend's call on the model's thread, answered by the request's deadline: a call still
        waiting for the thread then is never run."""
        call = loop.run_in_executor(self._thread, self.backend.score, query, documents, options)
        bound = asyncio.timeout(deadlines.left())
        try:
            async with bound:
                return await call
        except TimeoutError:
            if not bound.expired():
                raise
            retry_after = self._queue_limit.retry_after()
            raise DeadlineExceeded(
                f"model '{self.name}' did not reach this request before its deadline; the model has about "
                f"{retry_after}s of work queued: retry after {retry_after}s",
                retry_after=retry_after,
            ) from None

    async def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
