"""Token-budget packing: every input exactly once, within budget, sorted by length."""

from __future__ import annotations

import random

import pytest

from rerankd.batching import pack, padded_tokens


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
