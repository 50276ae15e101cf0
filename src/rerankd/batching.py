"""Packing pending inputs into forward passes: a pure function, no torch, no threads.

A forward pass costs roughly rows × longest row (everything is padded to the longest), so inputs
are sorted by length first and cut into batches whose padded size stays under a token budget.
Sorting across all pending requests means a short document is never padded to the length of a
long one from the same request.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["pack", "padded_tokens"]


def pack(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Group input indices into batches, each with ``rows * longest <= max_tokens`` and ``rows <= max_rows``.

    An input longer than ``max_tokens`` gets a batch of its own (it must still be scored).
    Batches come out shortest first; indices inside a batch are in ascending length order.
    """
    if max_tokens < 1 or max_rows < 1:
        raise ValueError("max_tokens and max_rows must be positive")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted ascending, so this input is the longest of the batch if it joins.
        if current and ((len(current) + 1) * lengths[index] > max_tokens or len(current) == max_rows):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Tokens a forward pass computes for these batches, padding included."""
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)
