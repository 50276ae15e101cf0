"""The one internal request and result that every dialect converts to and from.

Dialects (``rerankd.api``) translate wire formats into :class:`RerankRequest` and render
:class:`RerankResponse`; the service and everything below it never see a wire format.
Scorers (local backends behind the scheduler, later upstream providers) speak
:class:`ScoreResult`: raw scores in document order plus token counts and timings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

Activation = Literal["sigmoid", "identity", "saturation"]  # see service.activate
ModelStatus = Literal["not_loaded", "loading", "ready", "failed"]
# What to do with a document longer than the model's window: split it into windows and keep the best
# window's score, cut its end, cut its start, or refuse the request.
LongDocuments = Literal["chunk", "truncate_end", "truncate_start", "error"]


@dataclass(frozen=True, slots=True)
class ScoreOptions:
    """How to score, beyond query and documents. ``None`` fields take the model's configured default."""

    long_documents: LongDocuments | None = None
    max_chunks_per_doc: int | None = None
    overlap_tokens: int | None = None
    max_tokens_per_doc: int | None = None  # cut every document to this many tokens first
    instruction: str | None = None  # the task, for LLM rerankers that take one (None: the model's default)
    return_spans: bool = False  # also report where in each document its best window lies


@dataclass(frozen=True, slots=True)
class RerankRequest:
    """A validated rerank call, independent of the dialect it arrived in."""

    model: str
    query: str
    documents: tuple[str, ...]
    top_n: int | None = None  # None = all documents
    return_documents: bool = True
    raw_scores: bool = False  # skip the activation (sigmoid) of one-label models
    retries: int = 0
    options: ScoreOptions = field(default_factory=ScoreOptions)


@dataclass(frozen=True, slots=True)
class Timings:
    """Where the time of one call went, in seconds (rendered as x-*-time headers)."""

    tokenization: float = 0.0
    queue: float = 0.0
    inference: float = 0.0


@dataclass(frozen=True, slots=True)
class Span:
    """Where a document matched best: the character range ``[start, end)`` of its best-scoring window in
    the document as sent (Python string indices: Unicode code points), and that window's score."""

    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """What a scorer returns: one raw score per document, in request order."""

    scores: tuple[float, ...]
    activation: Activation
    query_tokens: int
    document_tokens: tuple[int, ...]
    timings: Timings = field(default_factory=Timings)
    document_chunks: tuple[int, ...] = ()  # inputs scored per document (> 1 when chunked); () = one each
    spans: tuple[Span | None, ...] = ()  # per document, when asked (``return_spans``) and known; raw scores


@dataclass(frozen=True, slots=True)
class BatchStats:
    """One forward pass, as the scheduler reports it to metrics."""

    rows: int
    requests: int
    real_tokens: int
    padded_tokens: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RankedDocument:
    index: int
    relevance_score: float
    document: str | None  # None when the caller did not ask for documents back
    span: Span | None = None  # its best window, when the caller asked (``return_spans``)


@dataclass(frozen=True, slots=True)
class Usage:
    query_tokens: int
    documents_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.query_tokens + self.documents_tokens


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at scoring a request: which model, and why it failed (None: it answered)."""

    model: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RerankResponse:
    model: str  # the model that answered: the one asked for, or a fallback
    results: tuple[RankedDocument, ...]
    usage: Usage
    attempts: tuple[Attempt, ...] = ()
    timings: Timings = field(default_factory=Timings)
    scored_documents: int = 0  # documents as scored, each chunk counted (Cohere's search units)
    headers: tuple[tuple[str, str], ...] = ()  # what the gateway tells the caller (rate limits, request id)

    @property
    def size(self) -> CallSize:
        """What the call used, as the gateway prices it."""
        return CallSize(self.usage.total_tokens, self.scored_documents)

    @property
    def search_units(self) -> int:
        return search_units(self.scored_documents)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as the gateway knows it."""

    label: str  # a managed key's prefix, "static:<hash prefix>" or "anonymous"; never a key
    key_id: int | None = None  # managed keys only
    models: tuple[str, ...] | None = None  # the models the key may use (names or aliases); None: all
    rpm: int | None = None
    tpm: int | None = None
    # Sees every model with its settings (upstream URLs, key variables): an admin key, or anyone on a
    # server without keys; a client key sees only the models it may use, without them.
    operator: bool = False


ANONYMOUS = Caller("anonymous")
OPERATOR = Caller("operator", operator=True)


@dataclass(frozen=True, slots=True)
class CallContext:
    """Where a call came from, for the ledger."""

    caller: Caller
    request_id: str
    route: str
    dialect: str


@dataclass(frozen=True, slots=True)
class CircuitState:
    """An upstream's circuit breaker, as /v1/models shows it."""

    circuit: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    retry_in_seconds: float


@dataclass(frozen=True, slots=True)
class CacheState:
    """A local model's cache of forward-pass outputs (``cache_mb``): its size and counts since it loaded."""

    capacity_bytes: int
    bytes: int
    entries: int
    hits: int  # inputs served from the cache
    misses: int  # inputs computed
    evictions: int


@dataclass(frozen=True, slots=True)
class ThreadsLayout:
    """How a local model's forward passes use the CPU (the ``threads_layout`` setting): ``workers`` threads
    take batches from its queue, each running its passes on ``threads`` OpenMP threads."""

    name: Literal["single", "parallel"]
    workers: int
    threads: int
    setting: str  # what was configured: auto, single or parallel
    # auto: each candidate's inputs per second in the passes timed at load, e.g. (("single", 6.3), ...)
    measured: tuple[tuple[str, float], ...] = ()

    def describe(self) -> str:
        """For the log and /v1/models: ``parallel: 2 workers x 1 thread (auto: single 6.3, parallel 8.5
        inputs/s)``."""
        workers, threads = "worker" + "s" * (self.workers > 1), "thread" + "s" * (self.threads > 1)
        shape = f"{self.workers} {workers} x {self.threads} {threads}"
        if not self.measured:
            return f"{self.name}: {shape} ({self.setting})"
        rates = ", ".join(f"{name} {rate:.1f}" for name, rate in self.measured)
        return f"{self.name}: {shape} ({self.setting}: {rates} inputs/s)"


@dataclass(frozen=True, slots=True)
class ScorerInfo:
    """What a ready scorer tells about itself; None where it does not apply."""

    precision: str | None = None  # what a local model computes in, e.g. "fp32 (auto)"
    max_length: int | None = None  # tokens per scored input
    batch_tokens: int | None = None  # padded tokens per forward pass
    circuit: CircuitState | None = None  # upstream models
    cache: CacheState | None = None  # local models with ``cache_mb`` set
    layout: ThreadsLayout | None = None  # local batched models: workers and threads (threads_layout)


@dataclass(frozen=True, slots=True)
class CallSize:
    """What a call will use, as a scorer tells the gateway before doing any work: exact for local models
    (after tokenizing), an estimate for upstream ones (``estimated``); and what ``Price.cost_of`` prices."""

    tokens: int  # usage's total_tokens
    inputs: int  # inputs scored, chunks counted
    estimated: bool = False

    @property
    def search_units(self) -> int:
        return search_units(self.inputs)


SEARCH_UNIT_INPUTS = 100


def search_units(inputs: int) -> int:
    """Cohere's billing unit, the one rule for answers, prices and the ledger: one per query per
    ``SEARCH_UNIT_INPUTS`` inputs scored (documents, each chunk counted), at least one."""
    return max(1, -(-inputs // SEARCH_UNIT_INPUTS))


# The gateway's admission of a call at its size: returns when the call may go, raises (402, 429) when not.
Admit = Callable[[CallSize], Awaitable[None]]


class Scorer(Protocol):
    """Scores a query against documents. Local models and upstream providers both implement it.

    With ``admit``, a scorer awaits ``admit(size)`` once it knows the call's size and before any forward
    pass or upstream request; an error it raises ends the call with nothing computed."""

    async def score(
        self, query: str, documents: tuple[str, ...], options: ScoreOptions, admit: Admit | None = None
    ) -> ScoreResult: ...

    def info(self) -> ScorerInfo: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SpecSummary:
    """The settings of a model that clients may see (``/v1/models``, TEI's ``/info``); never secrets."""

    source: str | None = None
    max_length: int | None = None
    dtype: str | None = None
    max_batch_tokens: int | None = None
    provider: str | None = None
    base_url: str | None = None  # without credentials
    api_key_env: str | None = None


@dataclass(frozen=True, slots=True)
class ModelView:
    """A read-only description of one configured model: what the API layer knows of models."""

    name: str
    kind: str
    aliases: tuple[str, ...]
    status: ModelStatus
    error: str | None  # why it cannot be loaded, and how to fix it
    fallbacks: tuple[str, ...]
    settings: SpecSummary
    loaded: ScorerInfo | None  # None until the model is ready

    @property
    def max_length(self) -> int | None:
        return (self.loaded.max_length if self.loaded else None) or self.settings.max_length

    @property
    def precision(self) -> str | None:
        return self.loaded.precision if self.loaded else None
