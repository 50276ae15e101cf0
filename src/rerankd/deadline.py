"""The deadline of the request being served: when, on ``time.monotonic()``, its answer is owed.

The service sets it once per request (``request_timeout``, across retries and fallbacks); every scorer
below reads it from here instead of through each ``Scorer.score`` signature, since a context variable
follows the request into the tasks it starts (a hybrid model's parts) and into none other.
The scheduler refuses work that cannot finish by it and drops work still queued at it; upstream calls
never wait past it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["current", "left", "until"]

_DEADLINE: ContextVar[float | None] = ContextVar("rerankd_deadline", default=None)


def current() -> float | None:
    """The deadline of the request this code serves, or None outside of one."""
    return _DEADLINE.get()


def left(now: float | None = None) -> float | None:
    """Seconds until the deadline (0 or less once it has passed), or None without one."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return None
    return deadline - (time.monotonic() if now is None else now)


@contextmanager
def until(deadline: float) -> Iterator[float]:
    """Serve the block by ``deadline``, or by an earlier one already set (a caller's); yields the one
    in force."""
    outer = _DEADLINE.get()
    effective = deadline if outer is None else min(outer, deadline)
    token = _DEADLINE.set(effective)
    try:
        yield effective
    finally:
        _DEADLINE.reset(token)
