"""Packing pending inputs into forward passes: pure functions, no torch, no threads.

What a forward pass costs is a :class:`PassCost`: a fixed part, a part per token computed (rows ×
longest row: everything is padded to the longest) and a part per token and position (attention grows
with the square of the length). Each model's is measured when it loads, on the device and in the
precision it runs in (:func:`fit_pass_cost` over timed passes of a few shapes). Inputs are sorted by
length, across all pending requests, and cut into consecutive batches that minimise the predicted
time exactly (dynamic programming) — the most throughput — under a token budget, a row limit and a
bound on one pass's predicted seconds (the latency a newly arrived request may wait behind). So a short
document is never padded to the length of a long one, and the number of passes follows what a pass
costs on the device: on a CPU, small and almost unpadded batches; on a GPU, whose passes have a large
fixed cost, large ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_BATCH_OVERHEAD", "PassCost", "fit_pass_cost", "pack", "padded_tokens"]

# Fixed cost of one forward pass, in tokens' worth of compute, when it has not been measured.
DEFAULT_BATCH_OVERHEAD = 64.0


@dataclass(frozen=True, slots=True)
class PassCost:
    """Predicted cost of one pass of ``rows`` inputs padded to ``length`` tokens:
    ``fixed + per_token * rows * length + per_token_position * rows * length**2``, in seconds when
    measured (or in tokens' worth, from a bare overhead: :meth:`in_tokens`)."""

    fixed: float
    per_token: float
    per_token_position: float = 0.0

    def __post_init__(self) -> None:
        if min(self.fixed, self.per_token, self.per_token_position) < 0:
            raise ValueError("the parts of a pass's cost must not be negative")

    @classmethod
    def in_tokens(cls, overhead: float = DEFAULT_BATCH_OVERHEAD) -> PassCost:
        """A pass costs ``overhead`` tokens beyond its own (the model before any measurement)."""
        return cls(fixed=overhead, per_token=1.0)

    def cost(self, rows: int, length: int) -> float:
        tokens = rows * length
        return self.fixed + self.per_token * tokens + self.per_token_position * tokens * length

    def describe(self) -> str:
        """For logs and reports: milliseconds fixed, per 1k tokens, and what attention adds at 512."""
        return (
            f"{self.fixed * 1000:.2f} ms + {self.per_token * 1e6:.3f} ms per 1k tokens"
            f" (+{self.per_token_position * 512 * 1e6:.3f} at 512 tokens)"
        )


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when the system is singular."""
    size = len(vector)
    rows = [[*matrix[i], vector[i]] for i in range(size)]
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(rows[r][column]))
        if abs(rows[pivot][column]) < 1e-30:
            return None
        rows[column], rows[pivot] = rows[pivot], rows[column]
        for r in range(size):
            if r != column:
                factor = rows[r][column] / rows[column][column]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[column], strict=True)]
    return [rows[i][size] / rows[i][i] for i in range(size)]


def fit_pass_cost(samples: Sequence[tuple[int, int, float]]) -> PassCost | None:
    """The least-squares :class:`PassCost` of timed passes ``(rows, longest, seconds)``, weighted so that
    each pass counts by its relative error; parts that come out negative are dropped (the quadratic one
    first) and the rest refitted. None when the samples cannot determine a cost."""
    features = [(1.0, float(rows * length), float(rows * length * length)) for rows, length, _ in samples]
    for used in ((0, 1, 2), (0, 1), (1,)):
        size = len(used)
        matrix = [[0.0] * size for _ in range(size)]
        vector = [0.0] * size
        for feature, (_, _, seconds) in zip(features, samples, strict=True):
            if seconds <= 0:
                continue
            weight = 1.0 / (seconds * seconds)  # relative error: small passes count as much as large ones
            picked = [feature[i] for i in used]
            for a in range(size):
                vector[a] += weight * picked[a] * seconds
                for b in range(size):
                    matrix[a][b] += weight * picked[a] * picked[b]
        solution = _solve(matrix, vector)
        if solution is None or any(value < 0 or not math.isfinite(value) for value in solution):
            continue
        parts = dict(zip(used, solution, strict=True))
        if parts.get(1, 0.0) <= 0:
            continue
        return PassCost(parts.get(0, 0.0), parts[1], parts.get(2, 0.0))
    return None


def pack(
    lengths: Sequence[int],
    max_tokens: int,
    max_rows: int,
    overhead: PassCost | float = DEFAULT_BATCH_OVERHEAD,
    max_cost: float = math.inf,
) -> list[list[int]]:
    """Group input indices into batches, each with ``rows * longest <= max_tokens``, ``rows <= max_rows``
    and a predicted cost of at most ``max_cost``, minimising the sum of the batches' predicted costs.

    ``overhead`` is what a pass costs: a measured :class:`PassCost`, or a number, the fixed cost of a pass
    in tokens (``PassCost.in_tokens``). An input that fits no batch alone (longer than ``max_tokens``, or
    costlier than ``max_cost``) gets a batch of its own (it must still be scored). Batches come out
    shortest first; indices inside a batch are in ascending length order.
    """
    if max_tokens < 1 or max_rows < 1:
        raise ValueError("max_tokens and max_rows must be positive")
    if not isinstance(overhead, PassCost):
        if overhead < 0:
            raise ValueError("overhead must not be negative")
        overhead = PassCost.in_tokens(overhead)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ordered = [lengths[i] for i in order]
    count = len(ordered)
    # cost[j]: the cheapest packing of the j shortest inputs; start[j]: where its last batch begins.
    cost = [0.0] + [float("inf")] * count
    start = [0] * (count + 1)
    for end in range(1, count + 1):
        longest = ordered[end - 1]  # sorted ascending: the last input of a batch is its longest
        for begin in range(end - 1, max(end - max_rows, 0) - 1, -1):
            rows = end - begin
            predicted = overhead.cost(rows, longest)
            if rows > 1 and (rows * longest > max_tokens or predicted > max_cost):
                break
            candidate = cost[begin] + predicted
            # On a tie the larger batch wins (fewer passes); costs in seconds tie only up to rounding.
            if candidate <= cost[end] * (1 + 1e-9):
                cost[end], start[end] = candidate, begin
    batches: list[list[int]] = []
    end = count
    while end > 0:
        batches.append(order[start[end] : end])
        end = start[end]
    batches.reverse()
    return batches


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Tokens a forward pass computes for these batches, padding included."""
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)
