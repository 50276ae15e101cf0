"""Hybrid models: the fusion math, the scorer over its components (scores, usage, spans), and the config
checks of `kind: hybrid`."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rerankd.backends.specs import HybridSpec
from rerankd.config import ConfigError, load_settings
from rerankd.serving.hybrid import HybridScorer, fuse, normalised
from rerankd.types import Admit, ScoreOptions, Scorer, ScoreResult, ScorerInfo, Span, Timings


def test_rrf_is_weight_over_k_plus_rank() -> None:
    assert normalised([0.1, 0.9, 0.5], "rrf", rrf_k=60) == [1 / 63, 1 / 61, 1 / 62]
    # ties: the earlier document ranks first
    assert normalised([1.0, 1.0], "rrf", rrf_k=10) == [1 / 11, 1 / 12]


def test_minmax_and_zscore_scale_within_the_request() -> None:
    assert normalised([2.0, 4.0, 3.0], "minmax") == [0.0, 1.0, 0.5]
    deviation = math.sqrt(((2 - 3) ** 2 + (4 - 3) ** 2 + 0) / 3)
    assert normalised([2.0, 4.0, 3.0], "zscore") == pytest.approx([-1 / deviation, 1 / deviation, 0.0])
    # a model that cannot tell the documents apart adds nothing
    assert normalised([5.0, 5.0], "minmax") == [0.0, 0.0]
    assert normalised([5.0, 5.0], "zscore") == [0.0, 0.0]
    assert normalised([], "rrf") == []


def test_fuse_is_the_weighted_sum_of_normalised_scores() -> None:
    bm25 = [10.0, 0.0, 5.0]  # minmax: 1, 0, 0.5
    neural = [0.2, 0.8, 0.4]  # minmax: 0, 1, 1/3
    assert fuse([bm25, neural], [0.3, 0.7], "minmax") == pytest.approx([0.3, 0.7, 0.15 + 0.7 / 3])
    assert fuse([bm25, neural], [1.0, 0.0], "rrf", rrf_k=1) == [1 / 2, 1 / 4, 1 / 3]


class FakeScorer:
    def __init__(self, scores: list[float], *, chunks: bool, spans: list[Span] | None = None) -> None:
        self.scores = scores
        self.chunks = chunks
        self.spans = spans
        self.calls: list[ScoreOptions] = []

    async def score(
        self, query: str, documents: tuple[str, ...], options: ScoreOptions, admit: Admit | None = None
    ) -> ScoreResult:
        self.calls.append(options)
        return ScoreResult(
            scores=tuple(self.scores),
            activation="sigmoid" if self.chunks else "saturation",
            query_tokens=len(query.split()),
            document_tokens=tuple(len(document.split()) for document in documents),
            timings=Timings(inference=0.5 if self.chunks else 0.1),
            document_chunks=(2,) * len(documents) if self.chunks else (),
            spans=tuple(self.spans or ()) if options.return_spans else (),
        )

    def info(self) -> ScorerInfo:
        return ScorerInfo()

    async def close(self) -> None:
        pass


async def test_hybrid_scorer_fuses_counts_every_component_and_takes_spans_from_the_windowed_one() -> None:
    neural_spans = [Span(3, 9, 0.0), Span(0, 4, 2.0)]
    scorers: dict[str, Scorer] = {
        "bm25": FakeScorer([1.0, 3.0], chunks=False, spans=[Span(0, 5, 1.0), Span(0, 7, 3.0)]),
        "neural": FakeScorer([0.0, 2.0], chunks=True, spans=neural_spans),
    }

    async def resolve(name: str) -> Scorer:
        return scorers[name]

    spec = HybridSpec.model_validate(
        {
            "name": "hybrid",
            "kind": "hybrid",
            "fusion": "zscore",
            "components": [{"model": "bm25", "weight": 0.5}, {"model": "neural", "weight": 2}],
        }
    )
    scorer = HybridScorer.load(spec, resolve)
    options = ScoreOptions(return_spans=True)
    result = await scorer.score("two words", ("a b c", "d e"), options)
    assert result.scores == (-2.5, 2.5)  # z-scores are -1, 1 for both components
    assert result.activation == "identity"
    assert result.query_tokens == 4 and result.document_tokens == (6, 4)  # both components counted
    assert result.document_chunks == (3, 3)  # 2 windows each + 1 whole document
    assert result.timings.inference == 0.5  # concurrent: as long as the slowest
    # the windowed model's spans, on its own (sigmoid) scale
    assert result.spans[0] == Span(3, 9, 0.5)
    second = result.spans[1]
    assert second is not None and (second.start, second.end) == (0, 4)
    assert second.score == pytest.approx(1 / (1 + math.exp(-2)))
    assert all(call == options for fake in scorers.values() for call in fake.calls)  # type: ignore[attr-defined]


def settings_with(*models: dict[str, Any]) -> None:
    load_settings(None, models=list(models), database_url="none")


def test_config_refuses_unknown_self_and_nested_components() -> None:
    bm25 = {"name": "bm25", "kind": "bm25"}
    hybrid = {"name": "h", "kind": "hybrid", "components": [{"model": "bm25"}, {"model": "other"}]}
    with pytest.raises(ConfigError, match="combines 'other', which is not another configured model"):
        settings_with(bm25, hybrid)
    itself = {"name": "h", "kind": "hybrid", "components": [{"model": "bm25"}, {"model": "h"}]}
    with pytest.raises(ConfigError, match="combines 'h'"):
        settings_with(bm25, itself)
    inner = {"name": "inner", "kind": "hybrid", "components": [{"model": "bm25"}, {"model": "b2"}]}
    outer = {"name": "outer", "kind": "hybrid", "components": [{"model": "inner"}, {"model": "bm25"}]}
    with pytest.raises(ConfigError, match="combines models itself"):
        settings_with(bm25, {"name": "b2", "kind": "bm25"}, inner, outer)
    with pytest.raises(ConfigError, match="components"):
        settings_with(bm25, {"name": "h", "kind": "hybrid", "components": [{"model": "bm25"}]})
    with pytest.raises(ConfigError, match="fusion"):
        settings_with(
            bm25,
            {"name": "b2", "kind": "bm25"},
            {
                "name": "h",
                "kind": "hybrid",
                "fusion": "mean",
                "components": [{"model": "bm25"}, {"model": "b2"}],
            },
        )


def test_a_hybrid_of_priced_models_needs_a_price_of_its_own() -> None:
    priced = {"name": "bm25", "kind": "bm25", "price": {"per_request": "0.01"}}
    free = {"name": "b2", "kind": "bm25"}
    hybrid: dict[str, Any] = {
        "name": "h",
        "kind": "hybrid",
        "components": [{"model": "bm25"}, {"model": "b2"}],
    }
    with pytest.raises(ConfigError, match=r"combines priced models \(bm25\) but has no `price`"):
        settings_with(priced, free, hybrid)
    settings_with(priced, free, {**hybrid, "price": {"per_request": "0.02"}})  # priced: accepted
    settings_with({**priced, "price": None}, free, hybrid)  # nothing priced: free stays free
