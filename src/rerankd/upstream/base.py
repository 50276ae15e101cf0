"""The one sender every upstream provider shares: a pooled ``httpx.AsyncClient``, the timeout, the
circuit breaker, error mapping and usage.

An :class:`UpstreamScorer` makes *one* attempt per ``score`` call; the service owns retries (with
backoff, jitter and the upstream's Retry-After) and fallbacks, for local and upstream models alike.
Failures map to: :class:`TransientFailure` (connect errors, timeouts, resets, 429, 5xx, and answers
that are not JSON at all, such as a proxy's HTML page or a truncated body — retried),
:class:`UpstreamError` (other 4xx, JSON of the wrong shape — not retried),
:class:`CircuitOpen` (the breaker is open — straight to fallbacks), and :class:`DeadlineExceeded` (the
request's deadline came first: a call's timeout is the lesser of ``timeout`` and the time left).
Error messages summarise the upstream's answer (status and a short, cleaned and redacted excerpt): they
never carry its raw body, our key or any other secret (``rerankd.redaction``), even when the upstream
echoes them.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence

import httpx

from rerankd import deadline as deadlines
from rerankd import tracing
from rerankd.errors import CircuitOpen, DeadlineExceeded, TransientFailure, UpstreamError
from rerankd.redaction import redact, remember
from rerankd.types import Admit, CallSize, CircuitState, ScoreOptions, ScoreResult, ScorerInfo, Timings
from rerankd.upstream import PROVIDERS
from rerankd.upstream.breaker import CircuitBreaker
from rerankd.upstream.spec import UpstreamSpec
from rerankd.upstream.tokens import count_tokens
from rerankd.upstream.wire import Parsed, Provider

__all__ = ["MAX_REPORTED_TOKENS", "UpstreamScorer", "retry_after_seconds", "summarize"]

log = logging.getLogger(__name__)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# Characters of an upstream's message read for the excerpt: redacted before it is cut, so that a secret
# is never cut in two with its first part shown.
_SCANNED = 4096


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def summarize(response: httpx.Response, limit: int = 160) -> str:
    """``HTTP 503 Service Unavailable: <a short excerpt of the upstream's message>``."""
    excerpt = ""
    try:
        body = response.json()
        if isinstance(body, Mapping):
            message = body.get("message") or body.get("detail") or body.get("error")
            if isinstance(message, Mapping):
                message = message.get("message")
            excerpt = str(message)[:_SCANNED] if message else ""
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        text = response.headers.get("content-type", "").startswith("text/")
        excerpt = response.text[:_SCANNED] if text else ""
    excerpt = redact(_CONTROL.sub(" ", excerpt)).strip()[:limit]
    head = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return f"{head}: {excerpt}" if excerpt else head


# The most tokens an upstream may report for one call: more is a broken upstream, not a usage to charge.
MAX_REPORTED_TOKENS = 10**9


def _check_usage(name: str, parsed: Parsed) -> None:
    """An upstream's reported usage is a whole number of tokens within bounds, or an upstream fault
    (before any arithmetic on it: a cost is never computed from an absurd count)."""
    for field, value in (("total_tokens", parsed.total_tokens), ("query_tokens", parsed.query_tokens)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_REPORTED_TOKENS:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
            raise UpstreamError(
                f"upstream '{name}' reported an impossible usage ({field} {shown}; at most "
                f"{MAX_REPORTED_TOKENS} tokens): its answer is not used"
            )


class UpstreamScorer:
    """Scores through a remote rerank API described by a :class:`Provider` (path, build, parse)."""

    def __init__(
        self,
        spec: UpstreamSpec,
        provider: Provider | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.provider = provider or PROVIDERS[spec.provider]
        self.upstream_model = spec.upstream_model or spec.name
        self.breaker = CircuitBreaker(spec.breaker_failures, spec.breaker_reset_seconds, clock)
        self._tokens_per_character = 1.0  # measured on the usage this upstream reports (see estimate)
        self._measured = False
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = spec.api_key()
        remember(*spec.secrets())  # so that an upstream echoing them, or httpx's log, shows none
        if spec.api_key_env and not key:
            log.warning(
                "upstream %r: environment variable %s is empty; calling without a key",
                spec.name,
                spec.api_key_env,
            )
        if key:
            headers["Authorization"] = f"Bearer {key}"
        # What a span of a call says of where it went: the configured address, never its credentials or query.
        target = httpx.URL(spec.base_url.rstrip("/") + self.provider.path)
        self._traced: dict[str, tracing.Attribute] = {
            "http.request.method": "POST",
            "server.address": target.host,
            "server.port": target.port or (443 if target.scheme == "https" else 80),
            "url.full": str(target.copy_with(username=None, password=None, query=None, fragment=None)),
            "rerankd.upstream.provider": spec.provider,
            "rerankd.upstream.model": self.upstream_model,
        }
        # A slow upstream holds at most `max_connections`; a call that waits longer than the timeout
        # for one fails over instead of queueing behind it.
        self.client = httpx.AsyncClient(
            base_url=spec.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(spec.timeout),
            limits=httpx.Limits(
                max_connections=spec.max_connections, max_keepalive_connections=spec.max_connections
            ),
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def load(cls, spec: UpstreamSpec) -> UpstreamScorer:
        """Nothing to load: the client connects on the first call."""
        return cls(spec)

    def info(self) -> ScorerInfo:
        circuit = CircuitState(
            circuit=self.breaker.state,
            consecutive_failures=self.breaker.consecutive_failures,
            retry_in_seconds=round(self.breaker.retry_in(), 1),
        )
        return ScorerInfo(circuit=circuit)

    def estimate(self, query: str, documents: Sequence[str]) -> CallSize:
        """What a call will use, before sending it: its characters times the tokens per character this
        upstream has billed so far (1 until it has reported a usage: tokens of rerankers' tokenizers rarely
        cover less than a character)."""
        characters = len(query) + sum(len(document) for document in documents)
        return CallSize(math.ceil(characters * self._tokens_per_character), len(documents), estimated=True)

    def _measure(self, query: str, documents: Sequence[str], billed: int) -> None:
        characters = len(query) + sum(len(document) for document in documents)
        if characters > 0:
            ratio, before = billed / characters, self._tokens_per_character
            self._tokens_per_character = 0.8 * before + 0.2 * ratio if self._measured else ratio
            self._measured = True

    async def score(
        self, query: str, documents: tuple[str, ...], options: ScoreOptions, admit: Admit | None = None
    ) -> ScoreResult:
        if not self.breaker.allow():
            raise CircuitOpen(
                f"upstream '{self.spec.name}' is failing ({self.breaker.consecutive_failures} failures in a "
                f"row); next try in {self.breaker.retry_in():.0f}s"
            )
        verdict = False
        try:
            if admit is not None:  # the gateway holds the estimate; the difference is settled after
                await admit(self.estimate(query, documents))
            result = await self._call(query, list(documents), options)
            self.breaker.record_success()
            verdict = True
            return result
        except (TransientFailure, UpstreamError):
            self.breaker.record_failure()
            verdict = True
            raise
        finally:
            if not verdict:
                self.breaker.abandon()

    async def _call(self, query: str, documents: list[str], options: ScoreOptions) -> ScoreResult:
        name = self.spec.name
        body = self.provider.build(self.upstream_model, query, documents, options)
        # The call never runs past the request's deadline: httpx's timeout (per phase: connect, pool,
        # each read) is at most the time left, and the whole exchange is cut off there too.
        left = deadlines.left()
        if left is not None and left <= 0:
            raise self._late()
        timeout = self.spec.timeout if left is None else min(self.spec.timeout, left)
        by_deadline = left is not None and left < self.spec.timeout
        bound = asyncio.timeout(left)
        began = time.perf_counter()
        try:
            # A client span per call, with its traceparent: the upstream's spans join the caller's trace.
            with tracing.span("POST", self._traced, kind="client") as sent:
                async with bound:
                    response = await self.client.post(
                        self.provider.path, json=body, timeout=timeout, headers=tracing.outgoing()
                    )
                sent.set("http.response.status_code", response.status_code)
                if response.status_code >= 400:
                    sent.fail(str(response.status_code))
        except httpx.PoolTimeout as exc:
            if by_deadline:
                raise self._late() from exc
            raise TransientFailure(
                f"upstream '{name}' has all {self.spec.max_connections} connections busy"
            ) from exc
        except httpx.TimeoutException as exc:
            if by_deadline:
                raise self._late() from exc
            raise TransientFailure(f"upstream '{name}' timed out after {self.spec.timeout:g}s") from exc
        except TimeoutError:
            if not bound.expired():
                raise
            raise self._late() from None
        except httpx.TransportError as exc:  # refused, reset, DNS, protocol errors
            raise TransientFailure(f"upstream '{name}' could not be reached: {type(exc).__name__}") from exc
        seconds = time.perf_counter() - began
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientFailure(
                f"upstream '{name}' answered {summarize(response)}",
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        if response.status_code >= 400:
            hint = (
                f"; check the key in ${self.spec.api_key_env}" if response.status_code in (401, 403) else ""
            )
            raise UpstreamError(f"upstream '{name}' refused the call: {summarize(response)}{hint}")
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            # A proxy's error page or a cut-off body: the next try may well get the real answer.
            kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
            raise TransientFailure(
                f"upstream '{name}' answered HTTP {response.status_code} with a body that is not JSON "
                f"({kind}, {len(response.content)} bytes)"
            ) from exc
        parsed: Parsed = self.provider.parse(data, response.headers, len(documents))
        return self._result(parsed, query, documents, seconds)

    def _late(self) -> DeadlineExceeded:
        """The request's deadline came first: not the upstream's fault (the breaker counts nothing)."""
        return DeadlineExceeded(
            f"upstream '{self.spec.name}' did not answer before the request's deadline; retry later",
            retry_after=1,
        )

    def _result(self, parsed: Parsed, query: str, documents: list[str], seconds: float) -> ScoreResult:
        """Upstream usage when it reports one, else our own count; split into query and documents."""
        _check_usage(self.spec.name, parsed)
        if parsed.total_tokens is not None:
            self._measure(query, documents, parsed.total_tokens)
        query_tokens = parsed.query_tokens if parsed.query_tokens is not None else count_tokens(query)
        counted = [count_tokens(document) for document in documents]
        if parsed.total_tokens is not None and parsed.total_tokens >= query_tokens:
            # Spread the billed document tokens over documents in proportion to our counts.
            billed, ours = parsed.total_tokens - query_tokens, max(1, sum(counted))
            counted = [round(billed * c / ours) for c in counted]
            counted[-1] += billed - sum(counted)
        return ScoreResult(
            scores=tuple(parsed.scores),
            activation="identity",  # upstream scores are already relevance scores
            query_tokens=query_tokens,
            document_tokens=tuple(counted),
            timings=Timings(inference=seconds),
        )

    async def close(self) -> None:
        await self.client.aclose()
