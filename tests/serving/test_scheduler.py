"""The batching scheduler with a scripted backend: shared passes, the queue limit, cancellation, failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from rerankd import deadline as deadlines
from rerankd.backends.base import Encoded, Prepared
from rerankd.errors import DeadlineExceeded, ModelUnavailable, Overloaded, TransientFailure
from rerankd.serving.batching import PassCost
from rerankd.serving.cache import entry_bytes
from rerankd.serving.metrics import Metrics
from rerankd.serving.scheduler import BatchingScorer, measure_pass_cost
from rerankd.types import Activation, BatchStats, ScoreOptions, ScoreResult

OPTIONS = ScoreOptions()


class ScriptedBackend:
    """Inputs are the documents' words; the score of a document is its number of tokens."""

    activation: Activation = "identity"
    max_length = 512
    precision = "fp32"
    batch_tokens = 4096

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.in_forward = threading.Event()
        self.batches: list[list[str]] = []
        self.fail_next = False

    def prepare(self, query: str, documents: Sequence[str], options: ScoreOptions) -> Prepared:
        inputs = [Encoded([hash(word) % 1000 for word in doc.split()]) for doc in documents]
        tags = {id(item): doc for item, doc in zip(inputs, documents, strict=True)}
        self._tags = {**getattr(self, "_tags", {}), **tags}
        return Prepared(inputs, len(query.split()), [len(doc.split()) for doc in documents], combine=list)

    def forward(self, inputs: Sequence[Encoded]) -> list[float]:
        self.in_forward.set()
        assert self.gate.wait(10)
        self.batches.append([self._tags[id(item)] for item in inputs])
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("device lost")
        return [float(len(item)) for item in inputs]


def make_scorer(backend: ScriptedBackend, **limits: int) -> tuple[BatchingScorer, list[BatchStats]]:
    stats: list[BatchStats] = []
    settings: dict[str, Any] = {
        "max_batch_tokens": 4096,
        "max_batch_size": 64,
        "max_queue_pairs": 1000,
        **limits,
    }
    return BatchingScorer("m", backend, observer=stats.append, **settings), stats


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def block_worker(scorer: BatchingScorer, backend: ScriptedBackend) -> asyncio.Task[ScoreResult]:
    """Occupy the worker with a one-document request held inside forward()."""
    backend.gate.clear()
    backend.in_forward.clear()
    task = asyncio.create_task(scorer.score("q", ("blocker",), OPTIONS))
    await asyncio.to_thread(backend.in_forward.wait, 5)
    return task


async def test_scores_come_back_in_document_order() -> None:
    backend = ScriptedBackend()
    scorer, _ = make_scorer(backend)
    result = await scorer.score("a query", ("one two three", "one", "one two"), OPTIONS)
    assert result.scores == (3.0, 1.0, 2.0)
    assert result.query_tokens == 2
    assert result.document_tokens == (3, 1, 2)
    await scorer.close()


async def test_two_concurrent_requests_share_one_forward_pass() -> None:
    backend = ScriptedBackend()
    scorer, stats = make_scorer(backend)
    blocker = await block_worker(scorer, backend)
    first = asyncio.create_task(scorer.score("q", ("alpha beta", "gamma delta"), OPTIONS))
    second = asyncio.create_task(scorer.score("q", ("epsilon zeta",), OPTIONS))
    await wait_until(lambda: len(scorer._jobs) == 2)
    backend.gate.set()
    results = await asyncio.gather(blocker, first, second)
    assert [r.scores for r in results] == [(1.0,), (2.0, 2.0), (2.0,)]
    assert backend.batches[0] == ["blocker"]
    assert sorted(backend.batches[1]) == ["alpha beta", "epsilon zeta", "gamma delta"]
    assert len(backend.batches) == 2
    # The worker records a pass's statistics after it has answered the pass's requests.
    await wait_until(lambda: len(stats) == 2)
    assert stats[1].requests == 2 and stats[1].rows == 3
    await scorer.close()


async def test_inputs_of_different_requests_are_sorted_by_length() -> None:
    backend = ScriptedBackend()
    short, long = "w", " ".join(["w"] * 100)
    # Budget for 4 long rows: sorted packing puts the 4 long documents together, the shorts together.
    scorer, stats = make_scorer(backend, max_batch_tokens=400)
    blocker = await block_worker(scorer, backend)
    tasks = [asyncio.create_task(scorer.score("q", (short, long, short, long), OPTIONS)) for _ in range(2)]
    await wait_until(lambda: len(scorer._jobs) == 2)
    backend.gate.set()
    await asyncio.gather(blocker, *tasks)
    assert [sorted(set(batch)) for batch in backend.batches[1:]] == [[short], [long]]
    assert all(s.padded_tokens == s.real_tokens for s in stats[1:])  # no padding at all
    await scorer.close()


async def test_full_queue_answers_overloaded_with_retry_after() -> None:
    backend = ScriptedBackend()
    scorer, _ = make_scorer(backend, max_queue_pairs=6)
    blocker = await block_worker(scorer, backend)  # holds 2 of the 6 places (1 document + 1)
    admitted = asyncio.create_task(scorer.score("q", ("a", "b", "c"), OPTIONS))  # 4 more: now full
    await wait_until(lambda: scorer.pending == 6)
    with pytest.raises(Overloaded) as info:
        await scorer.score("q", ("d",), OPTIONS)
    assert int(info.value.headers["Retry-After"]) >= 1
    backend.gate.set()
    assert (await admitted).scores == (1.0, 1.0, 1.0)
    await blocker
    assert scorer.pending == 0
    # Once drained, a request larger than the whole bound is still served (alone).
    assert len((await scorer.score("q", tuple("abcdefghij"), OPTIONS)).scores) == 10
    await scorer.close()


async def test_work_of_a_cancelled_request_is_dropped_before_compute() -> None:
    backend = ScriptedBackend()
    scorer, _ = make_scorer(backend)
    blocker = await block_worker(scorer, backend)
    gone = asyncio.create_task(scorer.score("q", ("client went away",), OPTIONS))
    kept = asyncio.create_task(scorer.score("q", ("still here",), OPTIONS))
    await wait_until(lambda: len(scorer._jobs) == 2)
    gone.cancel()
    backend.gate.set()
    await blocker
    assert (await kept).scores == (2.0,)
    with pytest.raises(asyncio.CancelledError):
        await gone
    computed = [doc for batch in backend.batches for doc in batch]
    assert "client went away" not in computed
    assert scorer.pending == 0
    await scorer.close()


async def test_failed_forward_fails_its_requests_and_the_worker_goes_on() -> None:
    backend = ScriptedBackend()
    scorer, _ = make_scorer(backend)
    backend.fail_next = True
    with pytest.raises(TransientFailure, match="device lost"):
        await scorer.score("q", ("a b",), OPTIONS)
    assert (await scorer.score("q", ("a b",), OPTIONS)).scores == (2.0,)
    await scorer.close()


async def test_close_answers_queued_requests() -> None:
    backend = ScriptedBackend()
    scorer, _ = make_scorer(backend)
    blocker = await block_worker(scorer, backend)
    queued = asyncio.create_task(scorer.score("q", ("x",), OPTIONS))
    await wait_until(lambda: len(scorer._jobs) == 1)
    closing = asyncio.create_task(scorer.close())
    await asyncio.sleep(0.05)
    backend.gate.set()
    await closing
    await blocker
    with pytest.raises(ModelUnavailable):
        await queued
    with pytest.raises(ModelUnavailable):
        await scorer.score("q", ("y",), OPTIONS)


async def test_queue_bounded_by_estimated_wait() -> None:
    backend = ScriptedBackend()
    scorer = BatchingScorer(
        "m", backend, max_batch_tokens=4096, max_batch_size=64, max_queue_pairs=10_000, max_queue_seconds=5.0
    )
    scorer._queue_limit.observe(inputs=10, seconds=1.0)  # measured: 10 inputs a second
    blocker = await block_worker(scorer, backend)  # 2 inputs pending
    admitted = asyncio.create_task(scorer.score("q", tuple("abcdefghijklmnopqrstuvwxyz"[:40]), OPTIONS))
    await wait_until(lambda: scorer.pending > 2)  # 2 + 27 inputs: ~2.9 s of work, under 5 s
    with pytest.raises(Overloaded, match=r"about 5\.1s of work"):
        await scorer.score("q", tuple("abcdefghijklmnopqrstu"), OPTIONS)  # +22 inputs: ~5.1 s
    backend.gate.set()
    await asyncio.gather(blocker, admitted)
    await scorer.close()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TimedBackend(ScriptedBackend):
    """A pass of ``rows`` inputs padded to ``length`` takes ``fixed + per_token * rows * length +
    per_token_position * rows * length**2`` seconds, on ``clock``; documents are cut to
    ``max_tokens_per_doc`` words, as real backends cut them to tokens."""

    def __init__(self, cost: PassCost, clock: FakeClock) -> None:
        super().__init__()
        self.pass_cost, self.clock = cost, clock

    def prepare(self, query: str, documents: Sequence[str], options: ScoreOptions) -> Prepared:
        limit = options.max_tokens_per_doc
        cut = [" ".join(doc.split()[:limit]) if limit else doc for doc in documents]
        return super().prepare(query, cut, options)

    def forward(self, inputs: Sequence[Encoded]) -> list[float]:
        self.clock.now += self.pass_cost.cost(len(inputs), max(map(len, inputs)))
        return [0.0] * len(inputs)


@pytest.mark.parametrize(
    "truth",
    [
        PassCost(fixed=0.02, per_token=0.0005),  # 20 ms fixed, 0.5 ms per token
        PassCost(fixed=0.0, per_token=0.001),  # no fixed cost
        PassCost(fixed=0.003, per_token=2e-6, per_token_position=1e-8),  # attention shows at length
    ],
)
def test_the_pass_cost_is_measured_over_batch_shapes(truth: PassCost) -> None:
    clock = FakeClock()
    measured = measure_pass_cost(TimedBackend(truth, clock), budget=4096, clock=clock)
    assert measured.fixed == pytest.approx(truth.fixed, abs=1e-9)
    assert measured.per_token == pytest.approx(truth.per_token, rel=1e-6)
    assert measured.per_token_position == pytest.approx(truth.per_token_position, rel=1e-6, abs=1e-12)


async def test_a_pass_is_cut_to_the_latency_bound() -> None:
    """Eight 101-token inputs: one pass would take 0.82 s; with a 0.25 s bound they go two at a time."""
    backend = ScriptedBackend()
    scorer = BatchingScorer(
        "m",
        backend,
        max_batch_tokens=4096,
        max_batch_size=64,
        max_queue_pairs=1000,
        batch_overhead=PassCost(fixed=0.01, per_token=0.001),
        max_pass_seconds=0.25,
    )
    documents = tuple(" ".join(f"w{i}" for i in range(100)) + f" d{j}" for j in range(8))
    await scorer.score("q", documents, OPTIONS)
    assert [len(batch) for batch in backend.batches] == [2, 2, 2, 2]
    await scorer.close()


# -- the output cache (cache_mb) -------------------------------------------------------------


class PairBackend(ScriptedBackend):
    """A cross-encoder's shape: an input is the query's words, a separator, the document's words (token
    types 0 then 1), with stable ids; its score is its number of tokens."""

    SEP = 0

    def __init__(self) -> None:
        super().__init__()
        self.vocab: dict[str, int] = {}

    def ids(self, text: str) -> list[int]:
        return [self.vocab.setdefault(word, len(self.vocab) + 1) for word in text.split()]

    def prepare(self, query: str, documents: Sequence[str], options: ScoreOptions) -> Prepared:
        head = [*self.ids(query), self.SEP]
        inputs = [
            Encoded([*head, *self.ids(doc)], [0] * len(head) + [1] * len(doc.split())) for doc in documents
        ]
        self._tags = {
            **getattr(self, "_tags", {}),
            **{id(i): d for i, d in zip(inputs, documents, strict=True)},
        }
        return Prepared(inputs, len(query.split()), [len(doc.split()) for doc in documents], combine=list)


def cached_scorer(
    backend: ScriptedBackend, cache_bytes: int = 1 << 20, metrics: Metrics | None = None, **limits: int
) -> BatchingScorer:
    settings: dict[str, Any] = {
        "max_batch_tokens": 4096,
        "max_batch_size": 64,
        "max_queue_pairs": 1000,
        **limits,
    }
    return BatchingScorer(
        "m",
        backend,
        cache_bytes=cache_bytes,
        cache_identity="m",
        cache_observer=metrics.cache_observer("m") if metrics else None,
        **settings,
    )


def computed(backend: ScriptedBackend) -> list[str]:
    return sorted(doc for batch in backend.batches for doc in batch)


async def test_cached_inputs_skip_the_forward_pass_with_the_same_scores() -> None:
    plain, cached = PairBackend(), PairBackend()
    without, within = cached_scorer(plain, cache_bytes=0), cached_scorer(cached)
    requests = [
        ("a query", ("one two three", "four", "five six")),
        ("a query", ("five six", "seven", "one two three", "four")),  # three repeats, one new
        ("another query", ("four",)),  # same document, another query: another pair
        ("a query", ("four", "four")),
    ]
    for query, documents in requests:
        assert (await within.score(query, documents, OPTIONS)).scores == (
            await without.score(query, documents, OPTIONS)
        ).scores
    assert computed(cached) == ["five six", "four", "four", "one two three", "seven"]
    assert cached.batches[1] == ["seven"] and cached.batches[2] == ["four"]
    assert len(cached.batches) == 3  # the last request came from the cache alone
    info = within.info().cache
    assert info is not None and (info.hits, info.misses, info.entries) == (4, 5, 5)
    assert without.info().cache is None
    await within.close()
    await without.close()


async def test_a_request_served_from_the_cache_alone_never_queues() -> None:
    backend = PairBackend()
    scorer = cached_scorer(backend)
    first = await scorer.score("q", ("x y", "z"), OPTIONS)
    blocker = await block_worker(scorer, backend)  # the worker is busy for as long as we like
    again = await asyncio.wait_for(scorer.score("q", ("z", "x y"), OPTIONS), 5)
    assert again.scores == first.scores[::-1]
    assert again.timings is not None and again.timings.queue == 0 and again.timings.inference == 0
    backend.gate.set()
    await blocker
    await scorer.close()


async def test_the_queue_limit_counts_only_the_inputs_to_compute() -> None:
    """A request is admitted on its upper bound (documents + 1, before tokenization), then holds places
    only for its inputs the cache lacks."""
    backend = PairBackend()
    scorer = cached_scorer(backend, max_queue_pairs=10)
    documents = ("a", "b", "c", "d", "e")
    await scorer.score("q", documents, OPTIONS)
    blocker = await block_worker(scorer, backend)
    assert scorer.pending == 1  # the blocker's one input to compute
    mostly_cached = asyncio.create_task(scorer.score("q", (*documents, "f"), OPTIONS))  # admitted on 7
    await wait_until(lambda: len(scorer._jobs) == 1)
    assert scorer.pending == 2  # keeps 1: "f"
    # 2 + 3 places fit (2 + 7 + 3 would not); a request of 9 new documents still does not.
    assert len((await scorer.score("q", ("a", "b"), OPTIONS)).scores) == 2
    with pytest.raises(Overloaded):
        await scorer.score("q", tuple("ghijklmno"), OPTIONS)
    backend.gate.set()
    await asyncio.gather(blocker, mostly_cached)
    assert scorer.pending == 0
    await scorer.close()


async def test_the_cache_keeps_to_its_bytes_and_evicts_the_least_recently_used() -> None:
    backend = PairBackend()
    one = entry_bytes(bytes(16), 1.0)  # a score's entry
    scorer = cached_scorer(backend, cache_bytes=3 * one)
    await scorer.score("q", ("d1", "d2", "d3"), OPTIONS)  # stored in this order: d1 is the oldest
    await scorer.score("q", ("d1",), OPTIONS)  # a hit: d1 is now the newest, d2 the oldest
    await scorer.score("q", ("d4",), OPTIONS)  # evicts d2
    backend.batches.clear()
    await scorer.score("q", ("d1", "d3", "d4", "d2"), OPTIONS)
    assert backend.batches == [["d2"]]
    info = scorer.info().cache
    assert info is not None
    assert info.bytes == 3 * one == info.capacity_bytes and info.entries == 3
    assert info.evictions == 2  # d2, then d3 to make room for d2 again
    await scorer.close()


async def test_a_failed_pass_stores_nothing() -> None:
    backend = PairBackend()
    scorer = cached_scorer(backend)
    backend.fail_next = True
    with pytest.raises(TransientFailure):
        await scorer.score("q", ("a b",), OPTIONS)
    assert (await scorer.score("q", ("a b",), OPTIONS)).scores == (4.0,)
    assert computed(backend) == ["a b", "a b"]
    await scorer.close()


async def test_cache_metrics_are_counted_per_model() -> None:
    metrics = Metrics()
    backend = PairBackend()
    scorer = cached_scorer(backend, metrics=metrics)
    await scorer.score("q", ("a", "b"), OPTIONS)
    await scorer.score("q", ("b", "c"), OPTIONS)

    def sample(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"model": "m"})

    assert sample("rerankd_cache_hits_total") == 1
    assert sample("rerankd_cache_misses_total") == 3
    info = scorer.info().cache
    assert info is not None and sample("rerankd_cache_bytes") == info.bytes > 0
    await scorer.close()


@pytest.mark.parametrize("kind", ["bi-encoder", "cross-encoder"])
async def test_real_models_score_the_same_with_and_without_the_cache(
    kind: str, tiny_bi_encoder: Path, tiny_bert: Path
) -> None:
    """A cached output is bit for bit what that input got when it was computed. A fresh fp32 pass is not
    reproducible across batch compositions (the GEMM kernels change with the rows: about 1e-7 apart), so
    where the cache serves part of a request, its scores equal a fresh pass's to that noise only."""
    from rerankd.kinds import load_model, model_spec

    source = tiny_bi_encoder if kind == "bi-encoder" else tiny_bert
    spec = model_spec({"name": "m", "kind": kind, "source": str(source), "device": "cpu", "dtype": "fp32"})
    backend = load_model(spec)
    settings: dict[str, Any] = {"max_batch_tokens": 4096, "max_batch_size": 64, "max_queue_pairs": 1000}
    without = BatchingScorer("m", backend, **settings)
    within = BatchingScorer(
        "m", backend, cache_bytes=1 << 20, cache_identity=spec.model_dump_json(), **settings
    )
    passages = (
        "The boundary layer separates from the wing at high angles of attack.",
        "Heat transfer in hypersonic flow over a blunt body.",
        "A short one.",
        "Buckling of thin cylindrical shells under axial compression, with experiments.",
        "Supersonic inlets and the shock waves that stand in front of them.",
    )
    query = "boundary layer separation"
    # One at a time: both scorers drive the same model. Computed in the same batches: the same scores.
    first = await within.score(query, passages, OPTIONS)
    assert first.scores == (await without.score(query, passages, OPTIONS)).scores
    # All from the cache: exactly the scores these inputs got. (In the same order: the bi-encoder's
    # cosines come from one matrix product, whose rounding depends on a row's place in it.)
    again = await within.score(query, passages, OPTIONS)
    assert again.scores == first.scores
    # Part cached, part computed: within a fresh pass's own batch noise, same ranking.
    partial = (*passages[2:], "Shock waves in front of supersonic inlets.", "Laminar flow.")
    mixed = await within.score(query, partial, OPTIONS)
    fresh = await without.score(query, partial, OPTIONS)
    assert mixed.scores == pytest.approx(fresh.scores, rel=1e-5, abs=1e-6)
    assert sorted(range(5), key=lambda i: mixed.scores[i]) == sorted(range(5), key=lambda i: fresh.scores[i])
    info = within.info().cache
    # The repeat: 5 documents (and the query); the mixed request: 3 documents (and the query).
    assert info is not None and info.hits == (10 if kind == "bi-encoder" else 8)
    await within.close()
    await without.close()


# -- the request's deadline ------------------------------------------------------------------


async def score_by(scorer: BatchingScorer, seconds: float, documents: tuple[str, ...]) -> ScoreResult:
    """Score as a request whose deadline is ``seconds`` from now (the service sets it so)."""
    with deadlines.until(time.monotonic() + seconds):
        return await scorer.score("q", documents, OPTIONS)


async def test_work_still_queued_at_its_deadline_is_answered_503_and_never_computed() -> None:
    backend = ScriptedBackend()
    scorer, _ = make_scorer(backend)
    blocker = await block_worker(scorer, backend)  # the worker is inside a pass that does not end
    began = time.monotonic()
    late = asyncio.create_task(score_by(scorer, 0.2, ("too late", "also late")))
    kept = asyncio.create_task(scorer.score("q", ("no deadline",), OPTIONS))
    with pytest.raises(DeadlineExceeded) as info:
        await late
    # Answered at its deadline, while the pass in progress still runs.
    assert 0.2 <= time.monotonic() - began < 0.2 + 0.5
    assert not blocker.done()
    assert int(info.value.headers["Retry-After"]) >= 1
    assert info.value.status == 503
    backend.gate.set()
    await blocker
    assert (await kept).scores == (2.0,)
    assert "too late" not in computed(backend) and "also late" not in computed(backend)
    assert scorer.pending == 0
    await scorer.close()


async def test_the_worker_skips_a_job_whose_deadline_passed_before_its_turn() -> None:
    """Even when the event loop has not yet answered it, a job past its deadline gets no forward pass."""
    backend = ScriptedBackend()
    scorer, _ = make_scorer(backend)
    blocker = await block_worker(scorer, backend)
    task = asyncio.create_task(score_by(scorer, 0.05, ("expired",)))
    await wait_until(lambda: len(scorer._jobs) == 1)
    time.sleep(0.1)  # the loop is held: the deadline's timer cannot run before the worker looks
    backend.gate.set()
    with pytest.raises(DeadlineExceeded):
        await task
    await blocker
    assert "expired" not in computed(backend)
    await scorer.close()


async def test_the_queue_limit_refuses_what_cannot_finish_by_the_deadline() -> None:
    backend = ScriptedBackend()
    scorer, _ = make_scorer(backend, max_queue_pairs=10_000)
    scorer._queue_limit.observe(inputs=10, seconds=1.0)  # measured: 10 inputs a second
    blocker = await block_worker(scorer, backend)  # 2 inputs pending
    documents = tuple(f"d{i}" for i in range(26))  # 27 inputs more: about 2.9 s of work
    with pytest.raises(Overloaded, match=r"about 2\.9s of work.*deadline is [12]\.\ds away") as info:
        await score_by(scorer, 2.0, documents)
    assert int(info.value.headers["Retry-After"]) >= 1
    assert scorer.pending == 2  # nothing of the refused request stays counted
    admitted = asyncio.create_task(score_by(scorer, 10.0, documents))
    await wait_until(lambda: scorer.pending == 2 + 27)
    backend.gate.set()
    assert len((await admitted).scores) == 26
    await blocker
    await scorer.close()


class SlowBackend(ScriptedBackend):
    """Each pass sleeps ``per_row`` seconds a row (a slow CPU, or a neighbour holding the cores)."""

    def __init__(self, per_row: float) -> None:
        super().__init__()
        self.per_row = per_row
        self.passes: list[tuple[float, list[str]]] = []  # when each pass began, and its documents

    def forward(self, inputs: Sequence[Encoded]) -> list[float]:
        self.passes.append((time.monotonic(), [self._tags[id(item)] for item in inputs]))
        time.sleep(self.per_row * len(inputs))
        return super().forward(inputs)


async def test_the_rate_is_measured_over_busy_wall_time_not_only_the_passes() -> None:
    """Time the worker loses outside its passes (here, an observer that takes 30 ms after each pass, as a
    neighbour taking the cores would) counts in the rate that the queue limit estimates with."""
    backend = SlowBackend(per_row=0.005)
    scorer = BatchingScorer(
        "m",
        backend,
        max_batch_tokens=4096,
        max_batch_size=2,
        max_queue_pairs=1000,
        observer=lambda _: time.sleep(0.03),
    )
    await scorer.score("q", tuple(f"d{i}" for i in range(20)), OPTIONS)  # 10 passes of 2 rows
    await wait_until(lambda: len(scorer._queue_limit._recent) == 10)  # the last pass's observer is done
    # The passes alone: 2 rows in 10 ms, 200 a second; with the time between them, at most 2 in 40 ms.
    assert 0 < scorer._queue_limit._rate < 2 / 0.04 * 1.1
    await scorer.close()


async def test_a_burst_on_a_slowed_model_is_answered_by_the_deadline() -> None:
    """The queue limit was measured on a fast model, which then runs 20 times slower: every request is still
    answered by its deadline (plus a small margin), the late ones 503 with Retry-After and none of their
    inputs computed after their deadline; the next burst, on the corrected estimate, is refused at once
    (429) beyond what can finish in time, instead of waiting."""
    backend = SlowBackend(per_row=0.02)  # a pass of 4 rows: 80 ms, 50 inputs a second
    scorer = BatchingScorer("m", backend, max_batch_tokens=4096, max_batch_size=4, max_queue_pairs=10_000)
    scorer._queue_limit.observe(inputs=100, seconds=0.1)  # the estimate: 1000 inputs a second
    timeout, margin = 1.5, 0.25

    async def one(n: int) -> tuple[str, float, float]:
        began = time.monotonic()
        try:
            await score_by(scorer, timeout, (f"r{n}a", f"r{n}b"))
            outcome = "200"
        except DeadlineExceeded as exc:
            assert int(exc.headers["Retry-After"]) >= 1
            outcome = "503"
        except Overloaded as exc:
            assert int(exc.headers["Retry-After"]) >= 1
            outcome = "429"
        return outcome, began, time.monotonic() - began

    first = await asyncio.gather(*(one(n) for n in range(60)))  # 120 inputs: 2.4 s of work
    assert all(seconds < timeout + margin for _, _, seconds in first)
    outcomes = [outcome for outcome, _, _ in first]
    assert outcomes.count("200") >= 20 and outcomes.count("503") >= 15
    for n, (_, began, _) in enumerate(first):
        for started, documents in backend.passes:
            if f"r{n}a" in documents or f"r{n}b" in documents:
                assert started < began + timeout  # no pass began for work past its deadline
    answered = {f"r{n}a" for n, (outcome, _, _) in enumerate(first) if outcome == "200"}
    late = {f"r{n}a" for n, (outcome, _, _) in enumerate(first) if outcome == "503"}
    assert answered <= set(computed(backend))
    assert len(late & set(computed(backend))) <= 4  # at most those of the pass running at the deadline

    # Measured now: 50 inputs a second. The queue limit counts a request as 3 inputs: 1.5 s holds about 25.
    second = await asyncio.gather(*(one(n) for n in range(60, 120)))
    assert all(seconds < timeout + margin for _, _, seconds in second)
    outcomes = [outcome for outcome, _, _ in second]
    assert outcomes.count("429") >= 30 and outcomes.count("200") >= 15
    assert all(seconds < 0.1 for outcome, _, seconds in second if outcome == "429")  # refused at once
    assert outcomes.count("503") <= 2
    assert scorer.pending == 0
    await scorer.close()
