"""The batching scheduler with a scripted backend: shared passes, admission, cancellation, failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

import pytest

from rerankd.backends.base import Encoded, Prepared
from rerankd.errors import ModelUnavailable, Overloaded, TransientFailure
from rerankd.scheduler import BatchingScorer, measure_batch_overhead
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
    settings = {"max_batch_tokens": 4096, "max_batch_size": 64, "max_queue_pairs": 1000, **limits}
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
    scorer._admission.observe(inputs=10, seconds=1.0)  # measured: 10 inputs a second
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
    """A pass takes ``fixed`` seconds plus ``per_token`` seconds per token, on ``clock``."""

    def __init__(self, fixed: float, per_token: float, clock: FakeClock) -> None:
        super().__init__()
        self.fixed, self.per_token, self.clock = fixed, per_token, clock

    def forward(self, inputs: Sequence[Encoded]) -> list[float]:
        self.clock.now += self.fixed + self.per_token * sum(map(len, inputs))
        return [0.0] * len(inputs)


def test_batch_overhead_is_measured_in_tokens() -> None:
    # 20 ms fixed and 0.5 ms per token: a pass costs as much as 40 more tokens.
    clock = FakeClock()
    overhead = measure_batch_overhead(TimedBackend(fixed=0.02, per_token=0.0005, clock=clock), clock=clock)
    assert overhead == pytest.approx(40)
    no_fixed_cost = TimedBackend(fixed=0.0, per_token=0.001, clock=clock)
    assert measure_batch_overhead(no_fixed_cost, clock=clock) == pytest.approx(0, abs=1e-6)
