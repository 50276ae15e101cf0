"""The interface every local backend implements. No torch here, so the scheduler stays torch-free.

A *batched* backend (cross-encoder, bi-encoder) splits the work in two, so that the scheduler can
pack inputs of many requests into shared forward passes:

- ``prepare(query, documents)`` tokenizes (on a tokenizer thread) and returns the model inputs,
  the token counts for usage, and how to turn the per-input outputs back into per-document scores;
- ``forward(inputs)`` runs the model once over a packed batch (on the model's worker thread) and
  returns one output per input, in order.

A *direct* backend (bm25) scores a whole request at once; it has no model to share.
Backends return raw scores; the service applies ``activation``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rerankd.types import Activation, ScoreOptions, Span

__all__ = [
    "BatchedBackend",
    "DirectBackend",
    "DirectScores",
    "Encoded",
    "Prepared",
    "Windows",
]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One tokenized model input."""

    input_ids: Sequence[int]
    token_type_ids: Sequence[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True, slots=True)
class Windows:
    """The windows a request's documents were cut into, one per scored input, in input order."""

    owner: list[int]  # the document each window belongs to
    spans: list[tuple[int, int]]  # each window's character range in its document as sent
    count: int  # documents in the request
    best_weight: float = 1.0  # see document_scores

    def document_scores(self, scores: Sequence[float]) -> list[float]:
        """One score per document from its windows' scores: ``best_weight`` × its best window's score +
        (1 − ``best_weight``) × its first window's. 1 is "the best window wins"; 0 scores the document's
        opening only, as truncation does. A document of one window scores as that window either way."""
        best = [-math.inf] * self.count
        first: list[float | None] = [None] * self.count
        for document, score in zip(self.owner, scores, strict=True):
            best[document] = max(best[document], score)
            if first[document] is None:
                first[document] = score
        weight = self.best_weight
        return [
            b if f is None or weight == 1.0 or b == f else weight * b + (1.0 - weight) * f
            for b, f in zip(best, first, strict=True)
        ]

    def best_spans(self, scores: Sequence[float]) -> list[Span | None]:
        """Per document, its best-scoring window's character range and score (the first of equals)."""
        found: list[Span | None] = [None] * self.count
        for document, (start, end), score in zip(self.owner, self.spans, scores, strict=True):
            current = found[document]
            if current is None or score > current.score:
                found[document] = Span(start, end, score)
        return found


@dataclass(frozen=True, slots=True)
class Prepared:
    inputs: list[Encoded]
    query_tokens: int
    document_tokens: list[int]
    # Outputs of ``forward`` for ``inputs`` (same order) -> one raw score per document.
    combine: Callable[[list[Any]], list[float]]
    chunks: list[int] | None = None  # inputs per document, where documents were split into windows
    # Where the windows lie, and outputs -> one raw score per window (in ``windows`` order), for spans.
    windows: Windows | None = None
    window_scores: Callable[[list[Any]], list[float]] | None = None

    def spans(self, outputs: list[Any]) -> list[Span | None] | None:
        """Each document's best window (None where the backend does not say where its windows lie)."""
        if self.windows is None or self.window_scores is None:
            return None
        return self.windows.best_spans(self.window_scores(outputs))


@runtime_checkable
class BatchedBackend(Protocol):
    activation: Activation
    max_length: int
    precision: str  # what it computes in, e.g. "bf16 (auto)"
    batch_tokens: int  # the device's default budget of padded tokens per forward pass

    def prepare(self, query: str, documents: Sequence[str], options: ScoreOptions) -> Prepared: ...

    def forward(self, inputs: Sequence[Encoded]) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class DirectScores:
    scores: list[float]
    query_tokens: int
    document_tokens: list[int]


@runtime_checkable
class DirectBackend(Protocol):
    activation: Activation

    def score(self, query: str, documents: Sequence[str], options: ScoreOptions) -> DirectScores: ...
