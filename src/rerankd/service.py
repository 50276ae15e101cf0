"""RerankService: one rerank call from validated request to ranked response, whatever the dialect.

Resolve the model, check limits, score (with the request's retries on transient failures), apply
the activation once, sort best first, cut to ``top_n``, count usage.
"""

from __future__ import annotations

import asyncio
import math
import time

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from rerankd.config import Settings
from rerankd.errors import InvalidRequest, PayloadTooLarge, RerankdError, TransientFailure
from rerankd.metrics import Metrics
from rerankd.models import ModelPool
from rerankd.types import Activation, RankedDocument, RerankRequest, RerankResponse, ScoreResult, Usage

__all__ = ["RerankService", "activate"]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def activate(scores: tuple[float, ...], activation: Activation, *, raw: bool = False) -> list[float]:
    """Map raw scores to relevance: sigmoid for cross-encoder logits, s/(s+1) for BM25, else as is."""
    if raw or activation == "identity":
        return list(scores)
    if activation == "sigmoid":
        return [_sigmoid(s) for s in scores]
    return [s / (s + 1.0) for s in scores]


class RerankService:
    def __init__(self, settings: Settings, pool: ModelPool, metrics: Metrics) -> None:
        self.settings = settings
        self.pool = pool
        self.metrics = metrics

    def validate(self, request: RerankRequest) -> None:
        if not request.query.strip():
            raise InvalidRequest("`query` is empty; send the text to rank the documents against")
        if not request.documents:
            raise InvalidRequest("`documents` is empty; send at least one document to rank")
        if len(request.documents) > self.settings.max_documents:
            raise PayloadTooLarge(
                f"{len(request.documents)} documents sent; this server takes at most "
                f"{self.settings.max_documents} per request: split them into several requests"
            )
        if request.top_n is not None and request.top_n < 0:
            raise InvalidRequest("`top_n` must be >= 0 (0 or null returns every document)")
        if request.retries < 0:
            raise InvalidRequest("`retries` must be >= 0")

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        began = time.perf_counter()
        status = 200
        result: ScoreResult | None = None
        try:
            self.validate(request)
            scorer = await self.pool.scorer(request.model)
            attempts = 0
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(TransientFailure),
                stop=stop_after_attempt(min(request.retries, self.settings.max_retries) + 1),
                wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    result = await scorer.score(request.query, request.documents, request.options)
            assert result is not None
            return self._respond(request, result, attempts)
        except RerankdError as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away; its queued work was dropped
            raise
        except Exception:
            status = 500
            raise
        finally:
            self.metrics.observe_request(
                request.model, status, time.perf_counter() - began, result.timings if result else None
            )

    def _respond(self, request: RerankRequest, result: ScoreResult, attempts: int) -> RerankResponse:
        scores = activate(result.scores, result.activation, raw=request.raw_scores)
        # Non-finite scores (a numerically broken model) rank last instead of breaking JSON.
        scores = [s if math.isfinite(s) else -1e30 for s in scores]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        if request.top_n:
            order = order[: request.top_n]
        ranked = tuple(
            RankedDocument(i, scores[i], request.documents[i] if request.return_documents else None)
            for i in order
        )
        usage = Usage(query_tokens=result.query_tokens, documents_tokens=sum(result.document_tokens))
        self.metrics.documents.labels(request.model).inc(len(scores))
        self.metrics.tokens.labels(request.model).inc(usage.total_tokens)
        scored = sum(result.document_chunks) if result.document_chunks else len(scores)
        return RerankResponse(
            request.model, ranked, usage, attempts=attempts, timings=result.timings, scored_documents=scored
        )
