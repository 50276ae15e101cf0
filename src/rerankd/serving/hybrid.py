"""Hybrid models (``kind: hybrid``): several configured models score the same documents, and their scores
are fused into one per document.

Fusion works on each component's raw scores within the request (BM25's and a cross-encoder's logits
live on unrelated scales): ``rrf`` adds ``weight / (rrf_k + rank)`` per model (ranks from 1, ties
broken by document order); ``minmax`` adds ``weight × (score − min) / (max − min)``; ``zscore`` adds
``weight × (score − mean) / standard deviation``. A model whose scores are all equal adds nothing. The
fused score is the relevance score (activation ``identity``). The components score concurrently;
usage adds up what each of them scored, so a hybrid of BM25 and MiniLM counts both. Spans (with
``return_spans``) come from the first component that reports windows, on that model's own scale.

:func:`fuse` is pure: ``rerankd eval --tune`` uses it to try weights on the components' scores.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence

from rerankd.backends.specs import Fusion, HybridSpec
from rerankd.serving.activation import activate
from rerankd.types import (
    Activation,
    Admit,
    CallSize,
    ScoreOptions,
    Scorer,
    ScoreResult,
    ScorerInfo,
    Span,
    Timings,
)

__all__ = ["HybridScorer", "fuse", "normalised"]

Resolve = Callable[[str], Awaitable[Scorer]]  # a configured model's ready scorer (the pool's)


def normalised(scores: Sequence[float], fusion: Fusion, rrf_k: float = 60.0) -> list[float]:
    """One model's scores of one request, on the fusion's common scale."""
    if not scores:
        return []
    if fusion == "rrf":
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        fused = [0.0] * len(scores)
        for rank, index in enumerate(order, start=1):
            fused[index] = 1.0 / (rrf_k + rank)
        return fused
    if fusion == "minmax":
        low, high = min(scores), max(scores)
        return [(s - low) / (high - low) if high > low else 0.0 for s in scores]
    mean = math.fsum(scores) / len(scores)
    deviation = math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / len(scores))
    return [(s - mean) / deviation if deviation > 0 else 0.0 for s in scores]


def fuse(
    scores: Sequence[Sequence[float]], weights: Sequence[float], fusion: Fusion, rrf_k: float = 60.0
) -> list[float]:
    """The fused score of each document from each model's raw scores (``scores[model][document]``)."""
    count = len(scores[0]) if scores else 0
    fused = [0.0] * count
    for model_scores, weight in zip(scores, weights, strict=True):
        if weight == 0:
            continue
        for index, value in enumerate(normalised(model_scores, fusion, rrf_k)):
            fused[index] += weight * value
    return fused


class HybridScorer:
    activation: Activation = "identity"

    def __init__(self, spec: HybridSpec, resolve: Resolve) -> None:
        self.spec = spec
        self.resolve = resolve

    @classmethod
    def load(cls, spec: HybridSpec, resolve: Resolve) -> HybridScorer:
        return cls(spec, resolve)

    def info(self) -> ScorerInfo:
        return ScorerInfo()

    async def close(self) -> None:
        """Nothing of its own: the components are the pool's, closed with it."""

    async def score(
        self, query: str, documents: tuple[str, ...], options: ScoreOptions, admit: Admit | None = None
    ) -> ScoreResult:
        components = self.spec.components
        scorers = [await self.resolve(component.model) for component in components]
        results: list[ScoreResult] = await asyncio.gather(
            *(scorer.score(query, documents, options) for scorer in scorers)
        )
        fused = fuse(
            [result.scores for result in results],
            [component.weight for component in components],
            self.spec.fusion,
            self.spec.rrf_k,
        )
        count = len(documents)
        chunks = tuple(
            sum(result.document_chunks[i] if result.document_chunks else 1 for result in results)
            for i in range(count)
        )
        if admit is not None:  # the components' sizes add up only once they have run: admitted before use
            tokens = sum(result.query_tokens + sum(result.document_tokens) for result in results)
            await admit(CallSize(tokens, sum(chunks)))
        return ScoreResult(
            scores=tuple(fused),
            activation=self.activation,
            query_tokens=sum(result.query_tokens for result in results),
            document_tokens=tuple(sum(result.document_tokens[i] for result in results) for i in range(count)),
            # Concurrent components: the call waited as long as the slowest one at each stage.
            timings=Timings(
                tokenization=max(result.timings.tokenization for result in results),
                queue=max(result.timings.queue for result in results),
                inference=max(result.timings.inference for result in results),
            ),
            document_chunks=chunks,
            spans=_spans(results) if options.return_spans else (),
        )


def _spans(results: Sequence[ScoreResult]) -> tuple[Span | None, ...]:
    """The spans of the first component that cuts documents into windows (a batched model reports its
    windows per document; BM25 does not), else of the first with any; each score on its model's relevance
    scale (the hybrid's own scale is the fusion's)."""
    with_spans = [result for result in results if result.spans]
    if not with_spans:
        return ()
    chosen = next((result for result in with_spans if result.document_chunks), with_spans[0])
    known = [span for span in chosen.spans if span is not None]
    scores = iter(activate(tuple(span.score for span in known), chosen.activation))
    return tuple(None if span is None else Span(span.start, span.end, next(scores)) for span in chosen.spans)
