"""Reranking a first stage's candidates with configured models, in this process, through the same
service, pool and scheduler the server uses (so scores are the server's), and tuning hybrids.

Each query's candidates go out as one rerank request with raw scores (rankings equal the server's: the
activation is monotonic); a few requests are in flight at once so that the scheduler packs their inputs
into shared forward passes. Hybrid weights are tuned on the components' scores with the same fusion the
``hybrid`` kind runs (:func:`rerankd.serving.hybrid.fuse`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rerankd.backends.specs import Fusion, HybridSpec
from rerankd.evaluate.first_stage import Run
from rerankd.evaluate.measures import per_query
from rerankd.serving.hybrid import fuse
from rerankd.serving.service import RerankService
from rerankd.types import LongDocuments, RerankRequest, ScoreOptions

__all__ = ["Tuned", "rerank_run", "tune_hybrid", "weight_grid"]

FUSIONS: tuple[Fusion, ...] = ("rrf", "minmax", "zscore")


async def rerank_run(
    service: RerankService,
    model: str,
    candidates: Run,
    queries: Mapping[str, str],
    texts: Mapping[str, str],
    *,
    long_documents: LongDocuments | None = None,
    concurrency: int = 4,
    advance: Callable[[], None] | None = None,
) -> tuple[Run, dict[str, int]]:
    """Every query's candidates reranked by ``model``: query -> {document: raw score}, and query -> the
    tokens its answer's usage counts (what the gateway would bill: every stage of a cascade, every
    component of a hybrid)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(query: str) -> tuple[str, dict[str, float], int]:
        documents = list(candidates[query])
        if not documents:
            return query, {}, 0
        request = RerankRequest(
            model=model,
            query=queries[query],
            documents=tuple(texts[document] for document in documents),
            top_n=None,
            return_documents=False,
            raw_scores=True,
            options=ScoreOptions(long_documents=long_documents),
        )
        async with gate:
            response = await service.rerank(request)
        if advance is not None:
            advance()
        scores = {documents[item.index]: item.relevance_score for item in response.results}
        return query, scores, response.usage.total_tokens

    answers = await asyncio.gather(*(one(query) for query in candidates))
    return {query: scores for query, scores, _ in answers}, {query: tokens for query, _, tokens in answers}


def weight_grid(components: int, step: float) -> list[tuple[float, ...]]:
    """Weights summing to 1 on a grid of ``step`` (scale is irrelevant to the ranking)."""
    ticks = round(1 / step)
    return [
        tuple(count / ticks for count in counts)
        for counts in itertools.product(range(ticks + 1), repeat=components)
        if sum(counts) == ticks
    ]


@dataclass(frozen=True, slots=True)
class Tuned:
    fusion: Fusion
    weights: tuple[float, ...]
    ndcg: float  # mean NDCG@10 on the tuning queries

    def config(self, spec: HybridSpec) -> str:
        """The tuned settings as config YAML, to paste into the hybrid's entry."""
        lines = [f"fusion: {self.fusion}", "components:"]
        lines += [
            f"  - {{model: {component.model}, weight: {weight:g}}}"
            for component, weight in zip(spec.components, self.weights, strict=True)
        ]
        return "\n".join(lines)


def fused_run(component_runs: Sequence[Run], weights: Sequence[float], fusion: Fusion, rrf_k: float) -> Run:
    run: Run = {}
    for query, first in component_runs[0].items():
        documents = list(first)
        scores = [[component[query][document] for document in documents] for component in component_runs]
        run[query] = dict(zip(documents, fuse(scores, weights, fusion, rrf_k), strict=True))
    return run


def tune_hybrid(
    spec: HybridSpec,
    component_runs: Sequence[Run],
    qrels: Mapping[str, Mapping[str, int]],
    tuning: Sequence[str],
    step: float = 0.05,
) -> Tuned:
    """The fusion and weights with the best mean NDCG@10 on the ``tuning`` queries (first found on ties)."""
    subset = [{query: run[query] for query in tuning if query in run} for run in component_runs]
    best: Tuned | None = None
    grid = weight_grid(len(component_runs), step if len(component_runs) == 2 else max(step, 0.1))
    for fusion in FUSIONS:
        for weights in grid:
            values = per_query(qrels, fused_run(subset, weights, fusion, spec.rrf_k))["NDCG@10"]
            mean = sum(values.values()) / max(1, len(values))
            if best is None or mean > best.ndcg + 1e-12:
                best = Tuned(fusion, weights, mean)
    assert best is not None
    return best
