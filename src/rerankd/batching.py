"""Packing pending inputs into forward passes: a pure function, no torch, no threads.

A forward pass costs roughly a fixed overhead plus rows × longest row (everything is padded to the
longest). Inputs are sorted by length, across all pending requests, and cut into consecutive batches
that minimise that cost exactly (dynamic programming), under a token budget and a row limit. So a
short document is never padded to the length of a long one, and the number of passes follows how
expensive a pass is on the device: on a CPU, where a pass of 4 rows is as efficient per token as one
of 64, batches are small and almost unpadded; on a GPU, where a pass has a large fixed cost, they
are large.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DEFAULT_BATCH_OVERHEAD", "pack", "padded_tokens"]

# Fixed cost of one forward pass, in tokens' worth of compute, when it has not been measured.
DEFAULT_BATCH_OVERHEAD = 64.0


def pack(
    lengths: Sequence[int], max_tokens: int, max_rows: int, overhead: float = DEFAULT_BATCH_OVERHEAD
) -> list[list[int]]:
    """Group input indices into batches, each with ``rows * longest <= max_tokens`` and ``rows <= max_rows``,
    minimising ``sum(overhead + rows * longest)`` over the batches.

    ``overhead`` is the fixed cost of a forward pass in tokens (see
    :func:`rerankd.scheduler.measure_batch_overhead`). An input longer than ``max_tokens`` gets a batch of
    its own (it must still be scored). Batches come out shortest first; indices inside a batch are in
    ascending length order.
    """
    if max_tokens < 1 or max_rows < 1:
        raise ValueError("max_tokens and max_rows must be positive")
    if overhead < 0:
        raise ValueError("overhead must not be negative")
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
            if rows > 1 and rows * longest > max_tokens:
                break
            candidate = cost[begin] + overhead + rows * longest
            if candidate <= cost[end]:  # on a tie the larger batch wins: fewer passes
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
