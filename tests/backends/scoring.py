"""Scoring through a batched backend the way the scheduler does, and comparing precisions, for the backend
tests."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import pytest
from scipy.stats import spearmanr

from rerankd.serving.batching import pack
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


def ranking(scores: Sequence[float]) -> list[int]:
    """Indices, best score first."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def assert_ranks_alike(reference: Sequence[float], reduced: Sequence[float], *, tolerance: float) -> None:
    """A reduced precision (bf16) against fp32 on the same inputs: every score within ``tolerance``,
    Spearman's rho above 0.85 (one swap in five allowed), and every two documents whose reference
    scores are more than ``tolerance`` apart in the same order (the best one included). Closer pairs
    may swap: rounding reorders near-ties, which is all that bf16 is allowed to do.
    """
    reference, reduced = list(reference), list(reduced)
    assert max(reference) - min(reference) > 2 * tolerance, ("too close to say anything", reference)
    assert reduced == pytest.approx(reference, abs=tolerance), (reference, reduced)
    assert spearmanr(reference, reduced).statistic > 0.85, (reference, reduced)
    swapped = [
        (i, j)
        for i, j in itertools.permutations(range(len(reference)), 2)
        if reference[i] - reference[j] > tolerance and not reduced[i] > reduced[j]
    ]
    assert not swapped, (swapped, reference, reduced)
