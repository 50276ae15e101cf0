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
from collections.abc import Callable

from rerankd.types import ThreadsLayout

__all__ = ["default_threads", "in_step", "use_threads"]

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


def in_step(layout: ThreadsLayout, work: Callable[[threading.Barrier], None], name: str) -> None:
    """Run ``work`` on each of ``layout``'s workers at once, every one on a thread of its own using
    ``layout.threads`` OpenMP threads and meeting the others at the barrier it is given. Returns when all
    have stopped; the first failure is raised here, in the caller's thread, after the barrier is broken so
    that no worker waits for ever."""
    start = threading.Barrier(layout.workers)
    failed: list[BaseException] = []

    def worker() -> None:
        use_threads(layout.threads)
        try:
            work(start)
        except threading.BrokenBarrierError:
            return
        except BaseException as exc:
            failed.append(exc)
            start.abort()

    threads = [threading.Thread(target=worker, name=f"{name}-{n}") for n in range(layout.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise failed[0]
