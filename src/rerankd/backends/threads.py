"""How many OpenMP threads the calling thread's forward passes use: torch's intra-op threads, without
importing torch (a server that serves only bm25 never loads it).

``torch.set_num_threads`` is per thread (OpenMP's nthreads-var), but torch also remembers the last value set
anywhere and gives it to every thread that runs its first torch op later. So a thread that sets 1 for itself
also makes 1 the default of threads born after it: every thread that runs forward passes sets its own count
(:func:`use_threads`), and :func:`default_threads` is read once, before rerankd changed any.
"""

from __future__ import annotations

import sys
import threading

__all__ = ["default_threads", "use_threads"]

_lock = threading.Lock()
_default: int | None = None


def default_threads() -> int:
    """torch's own intra-op thread count in this process (``OMP_NUM_THREADS``, else one per physical core),
    as it was the first time this was asked; 1 while torch is not loaded."""
    global _default
    torch = sys.modules.get("torch")
    if torch is None:
        return 1
    with _lock:
        if _default is None:
            _default = int(torch.get_num_threads())
        return _default


def use_threads(count: int) -> None:
    """Forward passes run on this thread use ``count`` OpenMP threads (nothing to do without torch)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    default_threads()  # read before the first change
    torch.set_num_threads(count)
