"""The one internal request and result that every dialect converts to and from.

Dialects (``rerankd.api``) translate wire formats into :class:`RerankRequest` and render
:class:`RerankResponse`; the service and everything below it never see a wire format.
Scorers (local backends behind the scheduler, later upstream providers) speak
:class:`ScoreResult`: raw scores in document order plus token counts and timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Activation = Literal["sigmoid", "identity", "saturation"]  # see service.activate
ModelStatus = Literal["not_loaded", "loading", "ready", "failed"]


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


@dataclass(frozen=True, slots=True)
class Timings:
    """Where the time of one call went, in seconds (rendered as x-*-time headers)."""

    tokenization: float = 0.0
    queue: float = 0.0
    inference: float = 0.0


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """What a scorer returns: one raw score per document, in request order."""

    scores: tuple[float, ...]
    activation: Activation
    query_tokens: int
    document_tokens: tuple[int, ...]
    timings: Timings = field(default_factory=Timings)


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


@dataclass(frozen=True, slots=True)
class Usage:
    query_tokens: int
    documents_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.query_tokens + self.documents_tokens


@dataclass(frozen=True, slots=True)
class RerankResponse:
    model: str
    results: tuple[RankedDocument, ...]
    usage: Usage
    attempts: int = 1
    timings: Timings = field(default_factory=Timings)


class Scorer(Protocol):
    """Scores a query against documents. Local models and upstream providers both implement it."""

    async def score(self, query: str, documents: tuple[str, ...]) -> ScoreResult: ...

    async def close(self) -> None: ...
