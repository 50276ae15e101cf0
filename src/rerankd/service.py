"""RerankService: one rerank call from validated request to ranked response, whatever the dialect.

Resolve the model, check limits, score — with the request's retries on transient failures (backoff,
jitter, Retry-After, within the request's deadline), then the model's fallbacks in order — apply the
activation once, sort best first, cut to ``top_n``, count usage, and record every attempt.

The service is all the API layer talks to: rerank calls, read-only views of the models, metrics.
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from dataclasses import replace

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from rerankd.activation import activate
from rerankd.config import Settings
from rerankd.errors import (
    CircuitOpen,
    InvalidRequest,
    ModelUnavailable,
    Overloaded,
    PayloadTooLarge,
    RerankdError,
    TransientFailure,
    UpstreamError,
)
from rerankd.gateway.accounts import Accounts
from rerankd.gateway.metering import Admission, Meter, rate_headers
from rerankd.gateway.store import Store
from rerankd.metrics import Metrics
from rerankd.models import ModelPool
from rerankd.types import (
    Attempt,
    CallContext,
    Caller,
    ModelView,
    RankedDocument,
    RerankRequest,
    RerankResponse,
    ScoreResult,
    Span,
    Usage,
)

__all__ = ["RerankService", "activate", "meter_for"]


# Failures after which the next model of the fallback chain is tried. Errors in the request itself
# (invalid input, too large, unknown model) are not: another model would refuse it too.
_FALLBACK_ON = (TransientFailure, UpstreamError, CircuitOpen, ModelUnavailable, Overloaded)


def _exhausted(last: RerankdError, trace: list[Attempt]) -> RerankdError:
    """The last failure, its message listing what every model of the chain answered."""
    tried = "; ".join(f"{a.model}: {a.error}" for a in trace if a.error)
    error = copy.copy(last)
    error.message = f"every model failed — {tried}"
    error.args = (error.message,)
    return error


def _finite(score: float) -> float:
    return score if math.isfinite(score) else -1e30


def meter_for(settings: Settings, pool: ModelPool, store: Store | None) -> Meter:
    """The gateway's policy over these settings' keys and this pool's models and prices."""
    return Meter(
        store,
        static_keys=settings.api_keys,
        admin_keys=settings.admin_keys,
        canonical=pool.canonical,
        price_of=pool.price_of,
        chain_of=pool.chain_of,
    )


class RerankService:
    def __init__(
        self,
        settings: Settings,
        pool: ModelPool,
        metrics: Metrics,
        meter: Meter | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.metrics = metrics
        self.accounts = accounts  # managed keys and usage reports; None without a database
        self.meter = meter or meter_for(settings, pool, None)

    async def authenticate(self, authorization: str | None) -> Caller:
        """The caller a client's ``Authorization`` header names (Unauthorized, saying why, if none)."""
        return await self.meter.authenticate(authorization)

    async def serve(self, request: RerankRequest, context: CallContext) -> RerankResponse:
        """A client's call: admitted by its key's limits, scored, charged and recorded in the ledger
        (committed before this returns), with the rate-limit headers the client is owed."""
        began = time.perf_counter()
        admission = Admission()
        try:
            admission = await self.meter.admit(context.caller, request)
            response = await self.rerank(request)
        except RerankdError as exc:
            latency = time.perf_counter() - began
            await self.meter.settle(context, request, admission, status=exc.status, latency=latency)
            raise
        except asyncio.CancelledError:  # the client went away: nothing charged, the reservation released
            latency = time.perf_counter() - began
            await asyncio.shield(self.meter.settle(context, request, admission, status=499, latency=latency))
            raise
        await self.meter.settle(
            context, request, admission, response=response, latency=time.perf_counter() - began
        )
        headers = rate_headers(context.caller, admission.window, response.usage.total_tokens)
        return replace(response, headers=tuple(headers.items()))

    def models(self) -> list[ModelView]:
        """Every configured model, in config order."""
        return self.pool.views()

    def model(self, name: str) -> ModelView:
        """One model by name or alias (ModelNotFound, listing the others, if there is none)."""
        return self.pool.entry(name).view()

    def metrics_text(self) -> bytes:
        """The Prometheus exposition of this server's metrics."""
        self.metrics.models_ready.set(sum(view.status == "ready" for view in self.models()))
        return self.metrics.render()

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
        trace: list[Attempt] = []
        result: ScoreResult | None = None
        try:
            self.validate(request)
            chain = (request.model, *self.pool.entry(request.model).spec.fallbacks)
            deadline = time.monotonic() + self.settings.request_timeout
            failure: RerankdError | None = None
            for name in chain:
                try:
                    result = await self._score_with_retries(name, request, deadline, trace)
                except _FALLBACK_ON as exc:
                    failure = exc
                    continue
                return self._respond(request, result, name, trace)
            assert failure is not None
            raise _exhausted(failure, trace) if len(chain) > 1 else failure
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

    async def _score_with_retries(
        self, name: str, request: RerankRequest, deadline: float, trace: list[Attempt]
    ) -> ScoreResult:
        """One model: transient failures retried with backoff and jitter, or the wait the failing side
        asked for (Retry-After), as long as the next try still starts before the request's deadline."""
        try:
            scorer = await self.pool.scorer(name)
        except ModelUnavailable as exc:
            trace.append(Attempt(name, exc.message))
            raise
        retries = min(request.retries, self.settings.max_retries, self.pool.entry(name).spec.max_retries)
        backoff = wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05)

        def wait(state: RetryCallState) -> float:
            asked = getattr(state.outcome.exception(), "retry_after", None) if state.outcome else None
            return max(backoff(state), asked or 0.0)

        def stop(state: RetryCallState) -> bool:
            return state.attempt_number > retries or time.monotonic() + (state.upcoming_sleep or 0) > deadline

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientFailure), wait=wait, stop=stop, reraise=True
        )
        async for attempt in retrying:
            with attempt:
                try:
                    result = await scorer.score(request.query, request.documents, request.options)
                except RerankdError as exc:
                    trace.append(Attempt(name, exc.message))
                    self.metrics.attempts.labels(name, exc.code).inc()
                    raise
                trace.append(Attempt(name))
                self.metrics.attempts.labels(name, "ok").inc()
        return result

    @staticmethod
    def _spans(request: RerankRequest, result: ScoreResult) -> list[Span | None] | None:
        """Each document's best window with its score on the scale of ``relevance_score``."""
        if not request.options.return_spans or len(result.spans) != len(result.scores):
            return None
        found = [span for span in result.spans if span is not None]
        scores = iter(
            activate(tuple(span.score for span in found), result.activation, raw=request.raw_scores)
        )
        return [
            None if span is None else Span(span.start, span.end, _finite(next(scores)))
            for span in result.spans
        ]

    def _respond(
        self, request: RerankRequest, result: ScoreResult, served_by: str, trace: list[Attempt]
    ) -> RerankResponse:
        scores = activate(result.scores, result.activation, raw=request.raw_scores)
        # Non-finite scores (a numerically broken model) rank last instead of breaking JSON.
        scores = [_finite(s) for s in scores]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        if request.top_n:
            order = order[: request.top_n]
        spans = self._spans(request, result)
        ranked = tuple(
            RankedDocument(
                i,
                scores[i],
                request.documents[i] if request.return_documents else None,
                spans[i] if spans else None,
            )
            for i in order
        )
        usage = Usage(query_tokens=result.query_tokens, documents_tokens=sum(result.document_tokens))
        self.metrics.documents.labels(request.model).inc(len(scores))
        self.metrics.tokens.labels(request.model).inc(usage.total_tokens)
        scored = sum(result.document_chunks) if result.document_chunks else len(scores)
        return RerankResponse(
            served_by, ranked, usage, attempts=tuple(trace), timings=result.timings, scored_documents=scored
        )
