"""RerankService: one rerank call from validated request to ranked response, whatever the dialect.

Resolve the model, check limits, score — with the request's retries on transient failures (backoff,
jitter, Retry-After, within the request's deadline), then the model's fallbacks in order — apply the
activation once, sort best first, cut to ``top_n``, count usage, and record every attempt.

The service is all the API layer talks to: rerank calls, read-only views of the models, metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from rerankd import access, tracing
from rerankd import deadline as deadlines
from rerankd.config import Settings
from rerankd.errors import (
    CircuitOpen,
    DeadlineExceeded,
    InvalidRequest,
    MalformedBody,
    ModelUnavailable,
    Overloaded,
    PayloadTooLarge,
    RerankdError,
    TransientFailure,
    UpstreamError,
)
from rerankd.gateway.accounts import Accounts
from rerankd.gateway.metering import Meter, Tab
from rerankd.gateway.money import NANOS, from_nanos
from rerankd.gateway.store import Store, ledger
from rerankd.redaction import redact
from rerankd.serving.activation import activate
from rerankd.serving.metrics import Metrics
from rerankd.serving.pool import ModelPool
from rerankd.types import (
    OPERATOR,
    Attempt,
    CallContext,
    Caller,
    ModelView,
    RankedDocument,
    RerankRequest,
    RerankResponse,
    Scorer,
    ScoreResult,
    Span,
    Usage,
)

__all__ = ["Delivery", "RerankService", "activate", "meter_for"]


# Failures after which the next model of the fallback chain is tried. Errors in the request itself
# (invalid input, too large, unknown model) are not: another model would refuse it too.
_FALLBACK_ON = (TransientFailure, UpstreamError, CircuitOpen, ModelUnavailable, Overloaded)

# How long past the request's deadline an attempt may run before it is cut off, for a scorer that does
# not keep to the deadline itself (every scorer of this package does, and answers at the deadline).
_DEADLINE_GRACE = 0.1


def _exhausted(last: RerankdError, trace: list[Attempt]) -> RerankdError:
    """The last failure, its message listing what every model of the chain answered."""
    tried = "; ".join(f"{a.model}: {a.error}" for a in trace if a.error)
    error = copy.copy(last)
    error.message = redact(f"every model failed — {tried}")
    error.args = (error.message,)
    return error


@dataclass(frozen=True, slots=True)
class Delivery:
    """A call's answer as it is sent: the response (with its gateway headers) and its rendered body."""

    response: RerankResponse
    body: bytes


def _finite(score: float) -> float:
    return score if math.isfinite(score) else -1e30


def hold_seconds(settings: Settings) -> float:
    """How long a call's hold stays before a sweep may take it: its deadline plus as much again (5 s at
    least), so that a live replica's hold is never taken while its call can still settle."""
    return settings.request_timeout + max(5.0, settings.request_timeout)


def meter_for(settings: Settings, pool: ModelPool, store: Store | None) -> Meter:
    """The gateway's policy over these settings' keys and this pool's models and prices."""
    return Meter(
        store,
        static_keys=settings.api_keys,
        admin_keys=settings.admin_keys,
        metrics_keys=settings.metrics_keys,
        canonical=pool.canonical,
        price_of=pool.price_of,
        hold_seconds=hold_seconds(settings),
    )


def _texts(request: RerankRequest) -> list[tuple[str, str]]:
    """The request's texts, each with the field that holds it."""
    texts = [("query", request.query), *((f"documents[{i}]", d) for i, d in enumerate(request.documents))]
    if request.options.instruction is not None:
        texts.append(("instruction", request.options.instruction))
    return texts


def _note(call: ledger.Call, response: RerankResponse | None = None) -> None:
    """What the access log and the request's span say of this call, from its ledger row (the key's label,
    never the key)."""
    if tracing.on():
        tracing.note(
            {
                "rerankd.served_by": call.served_by,
                "rerankd.tokens": call.total_tokens,
                "rerankd.cost": str(from_nanos(call.cost_nanos)),
            }
        )
    record = access.current()
    if record is None:
        return
    record.key, record.dialect, record.model, record.served_by = (
        call.key_label,
        call.dialect,
        call.model,
        call.served_by,
    )
    record.documents, record.tokens = call.documents, call.total_tokens
    record.cost = str(from_nanos(call.cost_nanos))
    if response is not None:
        record.queue_seconds, record.compute_seconds = response.timings.queue, response.timings.inference


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

    async def serve(
        self,
        request: RerankRequest,
        context: CallContext,
        render: Callable[[RerankResponse], bytes] | None = None,
    ) -> Delivery:
        """A client's call: authorized (403 first), admitted by its key's limits once its size is known,
        scored, its answer rendered (``render``: the body the client will be sent), then charged and
        recorded in the ledger (committed before this returns), with the rate-limit headers it is owed.

        Every call settles, whatever happens — an error, the client leaving (499), a failed render — so
        nothing it held stays held; only a rendered answer is charged."""
        began = time.perf_counter()
        tab = self.meter.open(context)
        if tracing.on():  # on the request's span
            tracing.note(
                {
                    "rerankd.model": self._named(request.model),
                    "rerankd.dialect": context.dialect,
                    "rerankd.key": context.caller.label,
                    "rerankd.documents": len(request.documents),
                }
            )
        try:
            self.meter.authorize(context.caller, request)
            # The deadline runs from here: time spent on the key's checks counts against it too.
            with deadlines.until(time.monotonic() + self.settings.request_timeout):
                response = await self.rerank(request, tab)
            body = render(response) if render is not None else b""
        except BaseException as exc:
            status = 500
            if isinstance(exc, RerankdError):
                status = exc.status
            elif isinstance(exc, asyncio.CancelledError):
                status = 499  # the client went away: nothing charged
            latency = time.perf_counter() - began
            with tracing.span("rerankd.settlement", {"rerankd.status": status}):
                # Shielded: a cancelled call, too, gives back what it holds.
                failed = await asyncio.shield(self.meter.settle(tab, request, status=status, latency=latency))
            _note(failed)
            raise
        latency = time.perf_counter() - began
        with tracing.span("rerankd.settlement") as settlement:
            settling = asyncio.ensure_future(
                self.meter.settle(tab, request, response=response, latency=latency)
            )
            try:
                await asyncio.shield(settling)
            except asyncio.CancelledError:
                # The client left while its answer was charged: it is never delivered, so it is not charged.
                await asyncio.shield(self._undo(settling))
                raise
            call = settling.result()
            settlement.set("rerankd.status", call.status)
            settlement.set("rerankd.cost", str(from_nanos(call.cost_nanos)))
        _note(call, response)
        if call.cost_nanos:
            self.metrics.cost.labels(self._label(call.served_by or request.model)).inc(
                call.cost_nanos / NANOS
            )
        headers = tab.headers(response.usage.total_tokens)
        return Delivery(replace(response, headers=tuple(headers.items())), body)

    async def _undo(self, settling: asyncio.Future[ledger.Call]) -> None:
        with contextlib.suppress(Exception):  # a settlement that failed charged nothing
            await self.meter.refund(await settling)

    def models(self) -> list[ModelView]:
        """Every configured model, in config order."""
        return self.pool.views()

    def models_for(self, caller: Caller) -> list[ModelView]:
        """The models this caller may use, in config order (every model for an operator)."""
        return [view for view in self.pool.views() if self.meter.may_use(caller, view.name)]

    def model(self, name: str, caller: Caller = OPERATOR) -> ModelView:
        """One model by name or alias that the caller may use: else ModelNotFound or Forbidden, naming
        the models the caller may use."""
        self.meter.authorize_model(caller, name)
        return self.pool.entry(name).view()

    def _named(self, model: str) -> str:
        """A model as a span names it: as asked when configured, else the client's name cut short."""
        return model if self.pool.canonical(model) is not None else tracing.bounded(model)

    def _label(self, model: str) -> str:
        """A model as a metric label: a configured name or alias, else ``unknown`` — a client's made-up
        names would each add label sets that stay until restart."""
        return model if self.pool.canonical(model) is not None else "unknown"

    def metrics_text(self) -> bytes:
        """The Prometheus exposition of this server's metrics."""
        self.metrics.models_ready.set(sum(view.status == "ready" for view in self.models()))
        for name, entry in self.pool.entries.items():
            pending = getattr(entry.scorer, "pending", None)  # local models queue; upstreams do not
            if isinstance(pending, int):
                self.metrics.queue.labels(name).set(pending)
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
        for field, text in _texts(request):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise MalformedBody(
                    f"`{field}` holds {text[exc.start : exc.end]!r} at character {exc.start}, a lone "
                    "surrogate, which is not text: send valid Unicode (JSON's \\ud800-\\udfff only in pairs)"
                ) from None
        if request.top_n is not None and request.top_n < 0:
            raise InvalidRequest("`top_n` must be >= 0 (0 or null returns every document)")
        if request.retries < 0:
            raise InvalidRequest("`retries` must be >= 0")

    async def rerank(self, request: RerankRequest, tab: Tab | None = None) -> RerankResponse:
        """Score ``request`` through its model's chain; with a metered call's ``tab``, each scorer admits
        the call (``Tab.admit_for``) once it knows its size, before any work."""
        began = time.perf_counter()
        status = 200
        trace: list[Attempt] = []
        result: ScoreResult | None = None
        try:
            self.validate(request)
            chain = (request.model, *self.pool.entry(request.model).spec.fallbacks)
            failure: RerankdError | None = None
            # The deadline bounds the whole request: every scorer below answers by it (deadline.py).
            with deadlines.until(time.monotonic() + self.settings.request_timeout) as deadline:
                for name in chain:
                    if failure is not None and time.monotonic() >= deadline:
                        break  # no time left for a fallback: the last failure is the answer
                    try:
                        result = await self._score_with_retries(name, request, deadline, trace, tab)
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
                self._label(request.model),
                status,
                time.perf_counter() - began,
                result.timings if result else None,
            )

    async def _score_with_retries(
        self, name: str, request: RerankRequest, deadline: float, trace: list[Attempt], tab: Tab | None = None
    ) -> ScoreResult:
        """One model: transient failures retried with backoff and jitter, or the wait the failing side
        asked for (Retry-After), as long as the next try still starts before the request's deadline."""
        try:
            scorer = await self.pool.scorer(name)
        except ModelUnavailable as exc:
            trace.append(Attempt(name, redact(exc.message)))
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
                # A span per attempt, numbered across the model chain (retries and fallbacks).
                traced: dict[str, tracing.Attribute] = {
                    "rerankd.model": name,
                    "rerankd.attempt": len(trace) + 1,
                }
                try:
                    with tracing.span("rerankd.attempt", traced):
                        result = await self._score_by(deadline, scorer, name, request, tab)
                except RerankdError as exc:
                    trace.append(Attempt(name, redact(exc.message)))  # shown to the client: no secrets
                    self.metrics.attempts.labels(name, exc.code).inc()
                    raise
                trace.append(Attempt(name))
                self.metrics.attempts.labels(name, "ok").inc()
        return result

    @staticmethod
    async def _score_by(
        deadline: float, scorer: Scorer, name: str, request: RerankRequest, tab: Tab | None = None
    ) -> ScoreResult:
        """One attempt, answered by the deadline. Scorers keep to it themselves (with their own estimate
        of when to retry); this bound, a little later, catches one that does not."""
        bound = asyncio.timeout(max(0.0, deadline - time.monotonic()) + _DEADLINE_GRACE)
        try:
            async with bound:
                if tab is None:
                    return await scorer.score(request.query, request.documents, request.options)
                admit = tab.admit_for(name)  # the hold follows the model being tried
                return await scorer.score(request.query, request.documents, request.options, admit=admit)
        except TimeoutError:
            if not bound.expired():
                raise
            raise DeadlineExceeded(
                f"model '{name}' did not answer before the request's deadline; retry later",
                retry_after=1,
            ) from None

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
        self.metrics.documents.labels(self._label(request.model)).inc(len(scores))
        self.metrics.tokens.labels(self._label(request.model)).inc(usage.total_tokens)
        scored = sum(result.document_chunks) if result.document_chunks else len(scores)
        return RerankResponse(
            served_by, ranked, usage, attempts=tuple(trace), timings=result.timings, scored_documents=scored
        )
