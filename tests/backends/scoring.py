"""Scoring through a batched backend the way the scheduler does, for the backend tests."""

from __future__ import annotations

import math
from typing import Any

from rerankd.batching import pack
from rerankd.types import ScoreOptions


def score_batched(
    backend: Any, query: str, documents: list[str], options: ScoreOptions | None = None, budget: int = 100_000
) -> list[float]:
    """Run prepare + forward the way the scheduler does: length-sorted, packed batches."""
    prepared = backend.prepare(query, documents, options or ScoreOptions())
    outputs: list[float] = [0.0] * len(prepared.inputs)
    lengths = [len(item) for item in prepared.inputs]
    for batch in pack(lengths, budget, 64):
        for index, value in zip(batch, backend.forward([prepared.inputs[i] for i in batch]), strict=True):
            outputs[index] = value
    scores: list[float] = prepared.combine(outputs)
    return scores


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))
