"""Caches of forward-pass outputs: a thread-safe LRU bounded by bytes, and the per-model cache on top.

A batched backend's forward pass maps each tokenized input to one output, whatever else is in the
batch (up to rounding: fp32 kernels vary with the batch's shape by about 1e-7, bf16 by more): an
embedding for bi-encoders, a score for cross-encoders and LLM rerankers. So one cache per
model, keyed by input, covers both repeats that matter: documents a bi-encoder has already embedded
(and repeated queries), and exact-repeat (query, document) pairs of cross-encoders and LLM rerankers.
:class:`OutputCache` keys an input by its tokens (which already encode the query, document,
instruction or prompt template, window and truncation) and the model's identity (every setting of
its entry: name, source, revision, dtype, prompt and answer tokens...) and precision. The scheduler
sends only the misses to the model.

Entries are sized by :func:`entry_bytes`: what the key and value hold, plus what Python and torch
spend to keep them, so that ``capacity_bytes`` bounds the memory the cache really takes, not only
its payload.

Hand-written rather than ``cachetools.LRUCache(getsizeof=...)``: that one needs a lock, hit/miss
counters and an eviction hook added around it anyway (it has none of them), which is most of this
module, and it would be one more dependency of the server.
"""

from __future__ import annotations

import hashlib
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rerankd.backends.base import Encoded
from rerankd.types import CacheState

__all__ = ["ByteLRU", "Lookup", "OutputCache", "entry_bytes"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Measured on CPython 3.11, torch 2.13 (CPU), per entry beyond the payload: the OrderedDict node and the
# key's bytes object (about 125 bytes) ...
ENTRY_OVERHEAD = 128
# ... and, for a tensor, its Python object, TensorImpl, storage and allocator slack (about 1150 bytes).
TENSOR_OVERHEAD = 1152


def entry_bytes(key: bytes, value: object) -> int:
    """The memory one entry takes: the key, the value's data (a tensor's or array's ``nbytes``, 8 for a
    number), and the bookkeeping around them."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return len(key) + nbytes + ENTRY_OVERHEAD + TENSOR_OVERHEAD
    return len(key) + 8 + ENTRY_OVERHEAD


class ByteLRU(Generic[K, V]):
    """Least-recently-used entries leave first, once the entries' sizes add up to more than the capacity.

    ``sizeof(key, value)`` sizes an entry; one larger than the whole capacity is not stored. Every method
    may be called from any thread.
    """

    def __init__(self, capacity_bytes: int, sizeof: Callable[[K, V], int]) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, not {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._sizeof = sizeof
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is held, without counting a hit or a miss or refreshing it."""
        return key in self._entries

    def get(self, key: K) -> V | None:
        """The value, now the most recently used; None (a miss) when absent."""
        return self.get_many([key])[0]

    def get_many(self, keys: Iterable[K]) -> list[V | None]:
        """Look up several keys under one lock; None for each miss."""
        found: list[V | None] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    self.misses += 1
                    found.append(None)
                else:
                    self.hits += 1
                    self._entries.move_to_end(key)
                    found.append(entry[0])
        return found

    def put(self, key: K, value: V) -> bool:
        """Store (or replace) an entry as the most recently used, evicting the least recently used ones
        until it fits. False, and nothing stored, when the entry alone exceeds the capacity."""
        size = self._sizeof(key, value)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.capacity_bytes:
                return False
            while self._bytes + size > self.capacity_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted
                self.evictions += 1
            self._entries[key] = (value, size)
            self._bytes += size
        return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> CacheState:
        with self._lock:
            return CacheState(
                capacity_bytes=self.capacity_bytes,
                bytes=self._bytes,
                entries=len(self._entries),
                hits=self.hits,
                misses=self.misses,
                evictions=self.evictions,
            )


@dataclass(slots=True)
class Lookup:
    """What the cache holds of one request's inputs."""

    keys: list[bytes]  # per input
    outputs: list[Any]  # per input: the cached output, or None until computed
    missing: list[int]  # inputs to compute: the first of each distinct input the cache lacks
    hits: int  # distinct inputs found
    misses: int  # distinct inputs not found (len(missing))


class OutputCache:
    """One model's forward-pass outputs, per tokenized input.

    A key is a 128-bit BLAKE2b digest of the model's identity and precision and the input's token ids and
    token type ids: fixed-size whatever the input's length (an exact key would cost 8 bytes a token), and
    a collision, at 2**-64 odds even after 2**32 entries, is not a practical concern.
    """

    def __init__(self, capacity_bytes: int, identity: str) -> None:
        self.lru: ByteLRU[bytes, Any] = ByteLRU(capacity_bytes, entry_bytes)
        self._prefix = hashlib.blake2b(digest_size=16)
        encoded = identity.encode()
        self._prefix.update(len(encoded).to_bytes(8, "little") + encoded)

    def key(self, item: Encoded) -> bytes:
        digest = self._prefix.copy()
        ids = array("q", item.input_ids)
        digest.update(len(ids).to_bytes(8, "little"))
        digest.update(ids)
        if item.token_type_ids is not None:
            digest.update(array("q", item.token_type_ids))
        return digest.digest()

    def look_up(self, inputs: Sequence[Encoded]) -> Lookup:
        keys = [self.key(item) for item in inputs]
        first: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)
        found = dict(zip(first, self.lru.get_many(first), strict=True))
        missing = [index for key, index in first.items() if found[key] is None]
        outputs = [found[key] for key in keys]
        return Lookup(keys, outputs, missing, hits=len(first) - len(missing), misses=len(missing))

    def complete(self, lookup: Lookup, computed: Sequence[Any]) -> list[Any]:
        """Store the outputs computed for ``lookup.missing`` (in that order); every input's output."""
        fresh: dict[bytes, Any] = {}
        for index, value in zip(lookup.missing, computed, strict=True):
            fresh[lookup.keys[index]] = value
            self.lru.put(lookup.keys[index], _owned(value))
        return [
            fresh[key] if output is None else output
            for key, output in zip(lookup.keys, lookup.outputs, strict=True)
        ]

    def stats(self) -> CacheState:
        return self.lru.stats()


def _owned(value: Any) -> Any:
    """A tensor that owns its data: a row of a batch's output is a view that would keep the whole batch's
    memory alive (and uncounted) as long as the cache holds it."""
    clone = getattr(value, "clone", None)
    return clone() if callable(clone) and hasattr(value, "nbytes") else value
