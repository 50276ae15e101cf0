"""Token-budget packing: every input exactly once, within budget, sorted by length, at the least cost."""

from __future__ import annotations

import itertools
import random

import pytest

from rerankd.serving.batching import pack, padded_tokens


def test_every_input_once_and_within_budget() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(5, 300) for _ in range(500)]
    batches = pack(lengths, max_tokens=2048, max_rows=64)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 64
        assert len(batch) * max(lengths[i] for i in batch) <= 2048


def test_sorting_by_length_cuts_padding() -> None:
    rng = random.Random(1)
    lengths = [rng.choice([16, 400]) for _ in range(64)]
    sorted_batches = pack(lengths, max_tokens=4096, max_rows=256)
    # The naive packing: request order, fixed rows per batch.
    naive = [list(range(i, min(i + 10, 64))) for i in range(0, 64, 10)]
    assert padded_tokens(lengths, sorted_batches) < 0.7 * padded_tokens(lengths, naive)
    for batch in sorted_batches:
        assert len({lengths[i] for i in batch}) == 1  # short and long never share a batch here


def test_oversized_input_gets_its_own_batch() -> None:
    assert pack([10, 5000, 10], max_tokens=100, max_rows=8) == [[0, 2], [1]]


def test_empty_and_invalid() -> None:
    assert pack([], 100, 4) == []
    with pytest.raises(ValueError):
        pack([1], 0, 4)
    with pytest.raises(ValueError):
        pack([1], 10, 4, overhead=-1)


def _cost(lengths: list[int], batches: list[list[int]], overhead: float) -> float:
    return overhead * len(batches) + padded_tokens(lengths, batches)


def _cheapest_split(lengths: list[int], max_tokens: int, max_rows: int, overhead: float) -> float:
    """Brute force over every way to cut the sorted inputs into consecutive batches."""
    ordered = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = float("inf")
    for cuts in itertools.product([False, True], repeat=len(lengths) - 1):
        batches, current = [], [ordered[0]]
        for index, cut in zip(ordered[1:], cuts, strict=True):
            if cut:
                batches.append(current)
                current = []
            current.append(index)
        batches.append(current)
        if all(
            len(b) <= max_rows and (len(b) == 1 or len(b) * max(lengths[i] for i in b) <= max_tokens)
            for b in batches
        ):
            best = min(best, _cost(lengths, batches, overhead))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_packing_is_the_cheapest_split(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(8, 300) for _ in range(11)]
    overhead = rng.choice([0.0, 20.0, 64.0, 500.0])
    batches = pack(lengths, max_tokens=1200, max_rows=6, overhead=overhead)
    assert _cost(lengths, batches, overhead) == _cheapest_split(lengths, 1200, 6, overhead)


def test_overhead_trades_padding_for_passes() -> None:
    rng = random.Random(2)
    lengths = [rng.randint(40, 512) for _ in range(100)]
    cpu_like = pack(lengths, max_tokens=8192, max_rows=256, overhead=50)
    gpu_like = pack(lengths, max_tokens=8192, max_rows=256, overhead=5000)
    waste = 1 - sum(lengths) / padded_tokens(lengths, cpu_like)
    assert waste < 0.05
    assert len(gpu_like) < len(cpu_like)
    assert padded_tokens(lengths, gpu_like) > padded_tokens(lengths, cpu_like)
    # Without any cost per pass nothing is padded; equal lengths still share passes.
    assert padded_tokens(lengths, pack(lengths, 8192, 256, overhead=0)) == sum(lengths)
    assert pack([7] * 10, 8192, 256, overhead=0) == [list(range(10))]
