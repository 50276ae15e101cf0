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

from rerankd.types import Activation, ScoreOptions

__all__ = ["BatchedBackend", "DirectBackend", "DirectScores", "Encoded", "Prepared", "best_per_document"]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One tokenized model input."""

    input_ids: Sequence[int]
    token_type_ids: Sequence[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True, slots=True)
class Prepared:
    inputs: list[Encoded]
    query_tokens: int
    document_tokens: list[int]
    # Outputs of ``forward`` for ``inputs`` (same order) -> one raw score per document.
    combine: Callable[[list[Any]], list[float]]
    chunks: list[int] | None = None  # inputs per document, where documents were split into windows


def best_per_document(owner: Sequence[int], count: int, scores: Sequence[float]) -> list[float]:
    """A chunked document scores as its best window."""
    best = [-math.inf] * count
    for document, score in zip(owner, scores, strict=True):
        best[document] = max(best[document], score)
    return best


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
