"""Cascades (``kind: cascade``): configured models in turn, each scoring only the best documents of the
stage before it — e.g. bm25 on all of them, a bi-encoder on bm25's top 100, a cross-encoder on its top 20.

The answer ranks the final stage's documents first, by its relevance scores (the scores that model alone
would give them). Below them come the documents each earlier stage scored but did not pass on, the last
stage's first, each group in the order its stage gave it. Their scores carry on downwards from the final
stage's lowest: ``lowest − 1``, ``lowest − 2``, …, so that relevance stays monotone with the order. Every
stage ranks as the service would rank its answer alone: by relevance, ties by document order; the stage
after it gets the survivors in request order, so its ranking equals a request of those documents alone.

Usage adds up what every stage scored (a document scored by three stages counts three times). With
``admit``, each stage admits the call's exact size so far — the stages before it plus its own — before
its own forward pass (a stage's first admission places the hold, later ones raise it), so a budget or a
rate limit stops the cascade before the stage it cannot pay for. An error of a stage names the stage.
Spans (``return_spans``) come from the last stage that scored each document, on its relevance scale.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Awaitable, Callable

from rerankd.backends.specs import CascadeSpec
from rerankd.errors import PaymentRequired, RateLimited, RerankdError
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

__all__ = ["CascadeScorer"]

Resolve = Callable[[str], Awaitable[Scorer]]  # a configured model's ready scorer (the pool's)


def _finite(score: float) -> float:
    """As the service ranks an answer: a non-finite score (a numerically broken model) ranks last."""
    return score if math.isfinite(score) else -1e30


def _ranked(scores: list[float]) -> list[int]:
    """Positions by relevance, best first, ties in request order (the service's stable sort)."""
    return sorted(range(len(scores)), key=lambda j: -scores[j])


class CascadeScorer:
    activation: Activation = "identity"  # its scores are already relevance scores (the final stage's)

    def __init__(self, spec: CascadeSpec, resolve: Resolve) -> None:
        self.spec = spec
        self.resolve = resolve

    @classmethod
    def load(cls, spec: CascadeSpec, resolve: Resolve) -> CascadeScorer:
        return cls(spec, resolve)

    def info(self) -> ScorerInfo:
        return ScorerInfo()

    async def close(self) -> None:
        """Nothing of its own: the stages are the pool's, closed with it."""

    async def score(
        self, query: str, documents: tuple[str, ...], options: ScoreOptions, admit: Admit | None = None
    ) -> ScoreResult:
        count = len(documents)
        stages = self.spec.stages
        survivors = list(range(count))  # the documents the next stage scores, in request order
        ranked: list[int] = []  # the current stage's survivors, best first
        dropped: list[list[int]] = []  # per stage, the documents it ranked and did not pass on, best first
        relevance = [0.0] * count
        query_tokens, document_tokens, chunks = 0, [0] * count, [0] * count
        spans: list[Span | None] = [None] * count
        tokenization = queue = inference = 0.0
        for position, stage in enumerate(stages, start=1):
            if stage.top_k is not None:
                dropped.append(ranked[stage.top_k :])
                survivors = sorted(ranked[: stage.top_k])
            spent = CallSize(query_tokens + sum(document_tokens), sum(chunks))
            try:
                scorer = await self.resolve(stage.model)
                result = await scorer.score(
                    query, tuple(documents[i] for i in survivors), options, _after(spent, admit)
                )
            except (PaymentRequired, RateLimited):
                raise  # the key's limits, not the stage's doing
            except RerankdError as exc:
                where = f"cascade '{self.spec.name}', stage {position} of {len(stages)}"
                raise _at_stage(exc, where) from exc
            scores = [_finite(s) for s in activate(result.scores, result.activation)]
            ranked = [survivors[j] for j in _ranked(scores)]
            query_tokens += result.query_tokens
            for j, index in enumerate(survivors):
                relevance[index] = scores[j]
                document_tokens[index] += result.document_tokens[j]
                chunks[index] += result.document_chunks[j] if result.document_chunks else 1
            if options.return_spans and result.spans:
                found = [span for span in result.spans if span is not None]
                span_scores = iter(activate(tuple(span.score for span in found), result.activation))
                for index, span in zip(survivors, result.spans, strict=True):
                    if span is not None:
                        spans[index] = Span(span.start, span.end, next(span_scores))
            # Sequential stages: the call waited for each in turn.
            tokenization += result.timings.tokenization
            queue += result.timings.queue
            inference += result.timings.inference
        lowest = min((relevance[i] for i in survivors), default=0.0)
        below = [index for group in reversed(dropped) for index in group]
        for place, index in enumerate(below, start=1):
            relevance[index] = lowest - place
        return ScoreResult(
            scores=tuple(relevance),
            activation=self.activation,
            query_tokens=query_tokens,
            document_tokens=tuple(document_tokens),
            timings=Timings(tokenization=tokenization, queue=queue, inference=inference),
            document_chunks=tuple(chunks),
            spans=tuple(spans) if options.return_spans else (),
        )


def _after(spent: CallSize, admit: Admit | None) -> Admit | None:
    """A stage's ``admit``: the call's size is what the stages before it used plus the stage's own."""
    if admit is None:
        return None
    gateway = admit

    async def admit_stage(size: CallSize) -> None:
        await gateway(CallSize(spent.tokens + size.tokens, spent.inputs + size.inputs, size.estimated))

    return admit_stage


def _at_stage(error: RerankdError, where: str) -> RerankdError:
    """``error`` with ``where`` before its message: the same class, status and headers (Retry-After)."""
    named = copy.copy(error)
    named.message = f"{where}: {error.message}"
    named.args = (named.message,)
    return named
