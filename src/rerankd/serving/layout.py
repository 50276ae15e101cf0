"""The threads layout of a local model (the ``threads_layout`` setting): how its forward passes use the cores.

Two layouts on a CPU of N cores (N as torch counts them: ``OMP_NUM_THREADS``, else one per physical core):

- ``single``: one worker thread per model, its passes on N OpenMP threads. One pass ends soonest, but each
  of its parallel regions ends at a barrier: when another thread of the process (tokenizing, HTTP, JSON) or
  of the machine takes a core, the other OpenMP threads wait for it at every barrier.
- ``parallel``: N worker threads per model, each running passes of its own on one OpenMP thread: no barrier
  to stall, and small passes (what packing makes on a CPU) keep every core busy; a pass takes about N times
  longer, but N run at once. ``torch.set_num_threads`` is per thread, so the workers really run side by side
  (measured on 2 vCPUs, MiniLM-L6 shape, 8 x 128 tokens: two threads of one OpenMP thread each made 1.8x the
  passes of one, and 1.1-1.35x those of one thread on both cores).

``auto`` times both at load, after the warm-up, on passes of one shape (rows of about 128 tokens, as many as
make a single-layout pass of about 50 ms, at most a quarter of the batch budget), in alternating rounds, each
bounded to ``CANDIDATE_SECONDS`` or ``CANDIDATE_PASSES`` passes per worker (a second or two for BERT-base on 2
cores, well under one for small models), and keeps ``parallel`` when it computes at least ``MARGIN`` more
inputs per second. Timed on an idle machine, it sees no preemption; under a server's load ``parallel`` gains
more, so the choice errs towards ``single``, whose passes end soonest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from rerankd.backends.base import BatchedBackend, Encoded
from rerankd.backends.threads import default_threads, in_step, use_threads
from rerankd.types import ScoreOptions, ThreadsLayout

__all__ = ["CANDIDATE_PASSES", "CANDIDATE_SECONDS", "MARGIN", "choose_layout", "layout_of"]

# Each candidate's timing in one round: passes per worker until either bound (at least MIN_PASSES each).
CANDIDATE_SECONDS = 0.3
CANDIDATE_PASSES = 8
MIN_PASSES = 2
ROUNDS = 2
# A single-layout probe pass of about this long picks the rows of the timed passes.
PROBE_SECONDS = 0.05
PROBE_TOKENS = 128
# parallel must compute this much more than single to be chosen: a tie goes to the passes that end soonest.
MARGIN = 1.05

Layout = Literal["single", "parallel"]


def layout_of(
    name: Layout, setting: str, cores: int, measured: tuple[tuple[str, float], ...] = ()
) -> ThreadsLayout:
    """A layout on ``cores`` cores: one worker on all of them, or one worker per core on one each."""
    if name == "parallel" and cores > 1:
        return ThreadsLayout("parallel", workers=cores, threads=1, setting=setting, measured=measured)
    return ThreadsLayout("single", workers=1, threads=cores, setting=setting, measured=measured)


def choose_layout(
    backend: BatchedBackend, setting: str, budget: int, clock: Callable[[], float] = time.perf_counter
) -> ThreadsLayout:
    """The layout of a loaded, warmed-up model: the configured one, or with ``auto`` the faster one as
    timed here. A model off the CPU, or a CPU of one core, has one: ``single``."""
    cores = default_threads()
    device = getattr(getattr(backend, "device", None), "type", "cpu")
    if cores < 2 or device != "cpu" or setting == "single":
        return layout_of("single", setting, cores)
    if setting == "parallel":
        return layout_of("parallel", setting, cores)
    inputs = _probe_inputs(backend, budget, cores, clock)
    rates: dict[Layout, float] = {"single": 0.0, "parallel": 0.0}
    for _ in range(ROUNDS):  # alternating, each keeping its best: drift hits both alike
        for name in rates:
            candidate = layout_of(name, setting, cores)
            rates[name] = max(rates[name], _rate(backend, inputs, candidate, clock))
    chosen: Layout = "parallel" if rates["parallel"] >= MARGIN * rates["single"] else "single"
    measured = tuple((name, rate) for name, rate in rates.items())
    return layout_of(chosen, setting, cores, measured)


def _probe_inputs(
    backend: BatchedBackend, budget: int, cores: int, clock: Callable[[], float]
) -> list[Encoded]:
    """Rows of about PROBE_TOKENS tokens, as many as make a single-layout pass of about PROBE_SECONDS."""
    target = min(PROBE_TOKENS, backend.max_length)
    document = " ".join(["the boundary layer separates"] * target)
    options = ScoreOptions(long_documents="truncate_end", max_tokens_per_doc=max(1, target - 16))
    one = backend.prepare("warm up", [document], options).inputs[-1:]
    use_threads(cores)
    backend.forward(one)  # this shape's first pass builds its kernels
    began = clock()
    backend.forward(one)
    seconds = max(clock() - began, 1e-6)
    rows = max(1, min(int(PROBE_SECONDS / seconds), budget // len(one[0]) // 4))
    return one * rows


def _rate(
    backend: BatchedBackend, inputs: list[Encoded], layout: ThreadsLayout, clock: Callable[[], float]
) -> float:
    """Inputs per second that ``layout``'s workers compute together, each running passes over ``inputs``
    on its own thread, all started at once."""
    rates: list[float] = []
    lock = threading.Lock()

    def work(start: threading.Barrier) -> None:
        start.wait()
        began, passes = clock(), 0
        while passes < MIN_PASSES or (passes < CANDIDATE_PASSES and clock() - began < CANDIDATE_SECONDS):
            backend.forward(inputs)
            passes += 1
        with lock:
            rates.append(passes * len(inputs) / max(clock() - began, 1e-9))

    in_step(layout, work, "layout")  # a failed pass fails the load, in the caller's thread
    return sum(rates)
