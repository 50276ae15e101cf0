"""The byte-bounded LRU and the per-model output cache on top of it."""

from __future__ import annotations

import random
import threading

import pytest
import torch

from rerankd.backends.base import Encoded
from rerankd.serving.cache import ENTRY_OVERHEAD, TENSOR_OVERHEAD, ByteLRU, OutputCache, entry_bytes


def sized(capacity: int) -> ByteLRU[str, int]:
    """Entries weigh their value, in bytes."""
    return ByteLRU(capacity, lambda key, value: value)


def test_get_counts_hits_and_misses() -> None:
    cache = sized(100)
    assert cache.get("a") is None
    assert cache.put("a", 10)
    assert cache.get("a") == 10
    assert cache.get_many(["a", "b", "a"]) == [10, None, 10]
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries, stats.bytes) == (3, 2, 1, 10)


def test_the_least_recently_used_leaves_first() -> None:
    cache = sized(30)
    for key in "abc":
        cache.put(key, 10)
    assert cache.get("a") == 10  # now b is the least recently used
    cache.put("d", 10)
    assert "b" not in cache
    assert all(key in cache for key in "acd")
    cache.put("e", 20)  # needs two places: c, then a, go
    assert [key in cache for key in "acde"] == [False, False, True, True]
    assert cache.stats().evictions == 3


def test_bytes_never_exceed_the_capacity() -> None:
    cache = sized(1000)
    rng = random.Random(0)
    held: dict[str, int] = {}
    for step in range(2000):
        key, size = f"k{rng.randrange(300)}", rng.randrange(1, 120)
        cache.put(key, size)
        held[key] = size
        assert cache.bytes <= 1000, step
    # What it says it holds is what it holds.
    assert cache.bytes == sum(held[key] for key in held if key in cache)


def test_an_entry_larger_than_the_capacity_is_not_stored() -> None:
    cache = sized(50)
    cache.put("a", 20)
    assert not cache.put("big", 51)
    assert "big" not in cache and "a" in cache and cache.bytes == 20
    assert not cache.put("a", 60)  # a replacement that no longer fits drops the old value too
    assert "a" not in cache and cache.bytes == 0


def test_replacing_an_entry_counts_its_new_size() -> None:
    cache = sized(100)
    cache.put("a", 40)
    cache.put("a", 70)
    assert cache.bytes == 70 and len(cache) == 1 and cache.get("a") == 70


def test_a_zero_capacity_holds_nothing_and_a_negative_one_is_refused() -> None:
    assert not sized(0).put("a", 1)
    with pytest.raises(ValueError):
        sized(-1)


def test_concurrent_use_keeps_the_books_straight() -> None:
    cache = sized(5000)
    lookups = [0] * 8

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(3000):
            key = f"k{rng.randrange(500)}"
            if rng.random() < 0.5:
                cache.put(key, 10 + rng.randrange(3) * 10)
            else:
                cache.get(key)
                lookups[seed] += 1

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = cache.stats()
    assert stats.bytes <= 5000
    assert stats.bytes == sum(value for value, _ in cache._entries.values())
    assert stats.hits + stats.misses == sum(lookups)
    assert stats.hits > 0 and stats.evictions > 0


def test_entry_bytes_counts_the_payload_the_key_and_the_bookkeeping() -> None:
    key = bytes(16)
    assert entry_bytes(key, 0.5) == 16 + 8 + ENTRY_OVERHEAD
    embedding = torch.zeros(384)
    assert entry_bytes(key, embedding) == 16 + 384 * 4 + ENTRY_OVERHEAD + TENSOR_OVERHEAD


# -- the per-model cache ---------------------------------------------------------------------


def test_keys_tell_apart_tokens_token_types_and_models() -> None:
    cache = OutputCache(1 << 20, "model a, fp32")
    pair = Encoded([101, 7, 102, 9, 102], [0, 0, 0, 1, 1])
    assert cache.key(pair) == cache.key(Encoded([101, 7, 102, 9, 102], [0, 0, 0, 1, 1]))
    assert cache.key(pair) != cache.key(Encoded([101, 7, 102, 9, 102], [0, 0, 1, 1, 1]))
    assert cache.key(pair) != cache.key(Encoded([101, 7, 102, 9, 102]))
    assert cache.key(pair) != cache.key(Encoded([101, 7, 102, 9]))
    assert cache.key(pair) != OutputCache(1 << 20, "model a, bf16").key(pair)
    assert len(cache.key(pair)) == 16


def test_look_up_computes_each_distinct_missing_input_once() -> None:
    cache = OutputCache(1 << 20, "m")
    a, b, c = Encoded([1]), Encoded([2]), Encoded([3])
    first = cache.look_up([a, b, a])
    assert (first.missing, first.hits, first.misses) == ([0, 1], 0, 2)
    assert cache.complete(first, [1.5, 2.5]) == [1.5, 2.5, 1.5]
    second = cache.look_up([c, b, a])
    assert (second.missing, second.hits, second.misses) == ([0], 2, 1)
    assert cache.complete(second, [3.5]) == [3.5, 2.5, 1.5]
    stats = cache.stats()
    assert (stats.entries, stats.hits, stats.misses) == (3, 2, 3)


def test_a_stored_embedding_owns_its_memory() -> None:
    """A row of a batch's output is a view: stored as is, it would keep the whole batch alive."""
    cache = OutputCache(1 << 20, "m")
    batch = torch.randn(64, 384)
    rows = list(batch)
    lookup = cache.look_up([Encoded([1])])
    (returned,) = cache.complete(lookup, rows[:1])
    assert returned is rows[0]  # the request itself gets what was computed
    (stored,) = cache.look_up([Encoded([1])]).outputs
    assert torch.equal(stored, rows[0])
    assert stored.untyped_storage().nbytes() == 384 * 4
    assert cache.stats().bytes == entry_bytes(cache.key(Encoded([1])), stored)
