"""From a model's raw scores to the relevance scores clients see: the one mapping the service applies,
here on its own so that scorers combining other models (``kind: hybrid``) can put a component's score on
the scale clients know it by."""

from __future__ import annotations

import math

from rerankd.types import Activation

__all__ = ["activate"]


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
