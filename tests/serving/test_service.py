"""RerankService: validation, activation applied once, sorting, top_n, usage, retries."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from rerankd import deadline as deadlines
from rerankd.backends.specs import Bm25Spec
from rerankd.config import Settings
from rerankd.errors import DeadlineExceeded, InvalidRequest, PayloadTooLarge, TransientFailure
from rerankd.serving.metrics import Metrics
from rerankd.serving.pool import ModelEntry
from rerankd.serving.service import RerankService, activate
from rerankd.types import RerankRequest, ScoreOptions, ScoreResult


class FlakyScorer:
    def __init__(self, scores: tuple[float, ...], failures: int = 0, activation: str = "sigmoid") -> None:
        self.scores = scores
        self.failures = failures
        self.calls = 0
        self.activation = activation

    async def score(self, query: str, documents: tuple[str, ...], options: ScoreOptions) -> ScoreResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientFailure("flaky")
        return ScoreResult(self.scores, self.activation, 3, tuple(len(d) for d in documents))  # type: ignore[arg-type]

    async def close(self) -> None:
        pass


class OnePool:
    def __init__(self, scorer: FlakyScorer) -> None:
        self._scorer = scorer

    def entry(self, name: str) -> ModelEntry:
        return ModelEntry(Bm25Spec(name=name, kind="bm25"))

    async def scorer(self, name: str) -> FlakyScorer:
        return self._scorer

    def canonical(self, name: str) -> str:
        return name

    def price_of(self, name: str) -> None:
        return None

    def chain_of(self, name: str) -> tuple[str, ...]:
        return (name,)


def make(scorer: FlakyScorer, **settings: int) -> RerankService:
    return RerankService(Settings(**settings), OnePool(scorer), Metrics())  # type: ignore[arg-type]


def request(**fields: object) -> RerankRequest:
    base: dict[str, object] = {"model": "m", "query": "q", "documents": ("aa", "b", "cccc")}
    return RerankRequest(**{**base, **fields})  # type: ignore[arg-type]


def test_activation_functions() -> None:
    assert activate((0.0, 2.0), "sigmoid") == [0.5, pytest.approx(1 / (1 + math.exp(-2)))]
    assert activate((-1000.0,), "sigmoid")[0] == pytest.approx(0.0)  # no overflow
    assert activate((3.0,), "saturation") == [0.75]
    assert activate((0.3,), "identity") == [0.3]
    assert activate((2.0,), "sigmoid", raw=True) == [2.0]


async def test_sorted_best_first_with_indices_usage_and_one_sigmoid() -> None:
    response = await make(FlakyScorer((0.0, 2.0, -1.0))).rerank(request())
    assert [r.index for r in response.results] == [1, 0, 2]
    assert [r.document for r in response.results] == ["b", "aa", "cccc"]
    assert response.results[0].relevance_score == pytest.approx(1 / (1 + math.exp(-2)))
    assert (response.usage.query_tokens, response.usage.documents_tokens, response.usage.total_tokens) == (
        3,
        7,
        10,
    )


@pytest.mark.parametrize(("top_n", "expected"), [(None, 3), (0, 3), (1, 1), (2, 2), (3, 3), (50, 3)])
async def test_top_n_clamps(top_n: int | None, expected: int) -> None:
    response = await make(FlakyScorer((0.1, 0.2, 0.3))).rerank(request(top_n=top_n))
    assert len(response.results) == expected


async def test_return_documents_false_and_raw_scores() -> None:
    response = await make(FlakyScorer((0.1, 5.0, 0.3))).rerank(
        request(return_documents=False, raw_scores=True)
    )
    assert response.results[0].document is None
    assert response.results[0].relevance_score == 5.0


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"query": "  "}, InvalidRequest),
        ({"documents": ()}, InvalidRequest),
        ({"top_n": -1}, InvalidRequest),
        ({"retries": -2}, InvalidRequest),
        ({"documents": ("x",) * 11}, PayloadTooLarge),
    ],
)
async def test_invalid_requests(fields: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        await make(FlakyScorer((0.0,)), max_documents=10).rerank(request(**fields))


async def test_retries_on_transient_failure() -> None:
    scorer = FlakyScorer((0.1, 0.2, 0.3), failures=2)
    response = await make(scorer).rerank(request(retries=2))
    assert len(response.attempts) == 3 and scorer.calls == 3
    assert [a.error for a in response.attempts] == ["flaky", "flaky", None]


async def test_no_retry_by_default_and_cap_by_server() -> None:
    scorer = FlakyScorer((0.1, 0.2, 0.3), failures=1)
    with pytest.raises(TransientFailure):
        await make(scorer).rerank(request())
    assert scorer.calls == 1
    capped = FlakyScorer((0.1, 0.2, 0.3), failures=5)
    with pytest.raises(TransientFailure):
        await make(capped, max_retries=2).rerank(request(retries=10))
    assert capped.calls == 3


async def test_non_finite_scores_rank_last_and_stay_json_safe() -> None:
    response = await make(FlakyScorer((float("nan"), 0.5, 0.1), activation="identity")).rerank(request())
    assert response.results[-1].index == 0
    assert all(math.isfinite(r.relevance_score) for r in response.results)


class StuckScorer(FlakyScorer):
    """A scorer that ignores the deadline it is given (a plugin kind that does not keep to it)."""

    def __init__(self) -> None:
        super().__init__(())
        self.told: list[float | None] = []

    async def score(self, query: str, documents: tuple[str, ...], options: ScoreOptions) -> ScoreResult:
        self.told.append(deadlines.left())
        await asyncio.sleep(30)
        raise AssertionError("not cut off")


async def test_request_timeout_bounds_the_whole_request_even_for_a_scorer_that_ignores_it() -> None:
    scorer = StuckScorer()
    service = RerankService(Settings(request_timeout=0.3, max_retries=3), OnePool(scorer), Metrics())  # type: ignore[arg-type]
    began = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        await service.rerank(request(retries=3))
    assert 0.3 <= time.monotonic() - began < 0.3 + 0.1 + 0.2  # its deadline and the grace, no more
    assert info.value.status == 503 and int(info.value.headers["Retry-After"]) >= 1
    [told] = scorer.told  # tried once, not retried: no time is left
    assert told is not None and 0.2 < told <= 0.3
    assert deadlines.current() is None  # the deadline ends with the request
