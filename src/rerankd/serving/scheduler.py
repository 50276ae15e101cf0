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
from rerankd.backends.base import BatchedBackend, DirectBackend, DirectScores, Encoded, Prepared
from rerankd.errors import DeadlineExceeded, ModelUnavailable, Overloaded, RerankdError, TransientFailure
from rerankd.serving.batching import DEFAULT_BATCH_OVERHEAD, PassCost, fit_pass_cost, pack, padded_tokens
from rerankd.serving.cache import Lookup, OutputCache
from rerankd.types import Admit, BatchStats, CallSize, ScoreOptions, ScoreResult, ScorerInfo, Span, Timings

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
) -> PassCost:
    """What a forward pass of this model costs on this device, in this precision, in seconds.

    Times passes over a few shapes (1 row, and a sixteenth and a quarter of the budget's rows, at about
    32, 128 and 512 tokens or the model's window; best of ``repeats`` each, read from ``clock``) and fits
    a :class:`~rerankd.serving.batching.PassCost`. Falls back to the bare default overhead (in tokens) when
    timing noise makes the fit meaningless.
    """
    samples: list[tuple[int, int, float]] = []
    for target in sorted({min(length, backend.max_length) for length in (32, 128, 512)}):
        # A document of about `target` tokens, cut to fit: real inputs, with the model's own prompt.
        document = " ".join(["the boundary layer separates"] * target)
        options = ScoreOptions(long_documents="truncate_end", max_tokens_per_doc=max(1, target - 16))
        one = backend.prepare("warm up", [document], options).inputs[-1:]
        length = len(one[0])
        # A quarter of the budget already shows the per-token cost; full passes would slow every load.
        for rows in sorted({1, max(1, budget // length // 16), max(1, budget // length // 4)}):
            inputs = one * rows
            times = []
            for _ in range(repeats):
                began = clock()
                backend.forward(inputs)
                times.append(clock() - began)
            samples.append((rows, length, min(times)))
    return fit_pass_cost(samples) or PassCost.in_tokens()


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

    def __post_init__(self) -> None:
        self.outputs = [None] * len(self.inputs)

    @property
    def gone(self) -> bool:
        return self.failed or self.future.done()

    def resolve(self, result: list[Any] | BaseException) -> None:
        self.loop.call_soon_threadsafe(_settle, self.future, result)

    def late(self, now: float) -> bool:
        return not self.gone and now >= self.deadline


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
    ) -> None:
        self.name = name
        self.backend = backend
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
        self._idle = True  # the worker waited for work since its last window (set and read by the worker)
        self._worker = threading.Thread(target=self._serve, name=f"model-{name}", daemon=True)
        self._worker.start()

    @property
    def pending(self) -> int:
        return self._queue_limit.pending

    def info(self) -> ScorerInfo:
        return ScorerInfo(
            precision=self.backend.precision,
            max_length=self.backend.max_length,
            batch_tokens=self.max_batch_tokens,
            cache=self._cache.stats() if self._cache is not None else None,
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

        try:
            loop = asyncio.get_running_loop()
            began = time.perf_counter()
            prepared, lookup = await loop.run_in_executor(self._tokenizer, prepare)
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
            job = _Job(todo, loop.create_future(), loop, enqueued=tokenized) if todo else None
            if job is not None:
                self._enqueue(job)
            computed = await job.future if job is not None else []
        finally:
            self._queue_limit.release(held)
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
            self._wakeup.notify()
        await asyncio.to_thread(self._worker.join, 30)
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
                self._idle = True
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

    def _serve(self) -> None:
        # The rate the queue limit estimates with is inputs computed per second of busy wall time: each pass
        # counts from the end of the one before (or of an idle wait), so the time spent between passes
        # (packing, answering, a neighbour holding the cores) slows the estimate as it slows the queue.
        busy_since = time.perf_counter()
        while (window := self._take_window()) is not None:
            if self._idle:
                busy_since, self._idle = time.perf_counter(), False
            lengths = [len(job.inputs[index]) for job, index in window]
            budget, rows = self.max_batch_tokens, self.max_batch_size
            for batch in pack(lengths, budget, rows, self.batch_overhead, self.max_pass_cost):
                self._drop_late(dict.fromkeys(window[k][0] for k in batch))
                live = [window[k] for k in batch if not window[k][0].gone]
                if live:
                    self._run_batch(live)
                    now = time.perf_counter()
                    self._queue_limit.observe(len(live), now - busy_since)
                    busy_since = now

    def _run_batch(self, entries: Sequence[tuple[_Job, int]]) -> None:
        jobs = list(dict.fromkeys(job for job, _ in entries))
        began = time.perf_counter()
        for job in jobs:
            if job.started is None:
                job.started = began
        try:
            outputs = self.backend.forward([job.inputs[index] for job, index in entries])
        except Exception as exc:  # a failed pass fails its requests, never the worker
            log.exception("forward pass of model %r failed", self.name)
            error = TransientFailure(f"model '{self.name}' failed while scoring: {type(exc).__name__}: {exc}")
            for job in jobs:
                job.failed = True
                job.resolve(error)
            return
        seconds = time.perf_counter() - began
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
                result = await self._run(loop, query, documents, options)
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
