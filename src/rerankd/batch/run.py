"""One ``rerankd batch`` run: resume, check the input, score on an engine, write in order, summarise.

The engines differ only in where the jobs are scored: ``local`` runs one :class:`Reranker` in this
process (:func:`run_local`); ``ray`` runs a pool of them as Ray Data actors (``rerankd.ray.data.run_ray``,
a floor above: its caller passes it in as the ``runner``).
Both yield :class:`~rerankd.batch.engine.Outcome` records that this module writes and counts, so their
output files are the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from rerankd.batch.engine import Outcome, batch_settings, score_jobs, window_pairs
from rerankd.batch.jobs import Job, JobOptions, Pending, Scan, read_job, scan
from rerankd.batch.output import OrderedWriter, read_done, restore_order
from rerankd.batch.progress import Progress, Tally
from rerankd.config import ConfigError, Settings
from rerankd.serving.reranker import Reranker

__all__ = ["BatchRun", "Engine", "Handler", "RayOptions", "Runner", "model_of", "run_batch", "run_local"]

Engine = Literal["local", "ray"]
# Takes each outcome as it comes; False stops the run (--fail-fast).
Handler = Callable[[Outcome], bool]


@dataclass(frozen=True, slots=True)
class RayOptions:
    """Where and how wide the Ray engine runs."""

    address: str | None = None  # None: RAY_ADDRESS, else a local Ray started (and stopped) for the run
    workers: int = 1  # actors, each holding one Reranker
    num_cpus: float = 1.0  # per actor
    num_gpus: float = 0.0  # per actor
    chunk_pairs: int = 2048  # pairs per block handed to an actor


@dataclass(frozen=True, slots=True)
class BatchRun:
    input: Path
    output: Path
    options: JobOptions
    engine: Engine = "local"
    ray: RayOptions = RayOptions()
    fail_fast: bool = False
    progress: bool = True


def model_of(settings: Settings, model: str | None) -> str:
    """The configured name of the model to use (the default model if None); ConfigError if none."""
    wanted = model or settings.default_model or (settings.models[0].name if settings.models else None)
    for spec in settings.models:
        if wanted in spec.names:
            return spec.name
    available = ", ".join(spec.name for spec in settings.models) or "(none configured)"
    raise ConfigError(f"model '{wanted}' is not configured; available models: {available}")


def _jobs(path: Path, pending: list[Pending]) -> Iterator[Job]:
    with path.open("rb") as file:
        for job in pending:
            yield read_job(file, job)


# Scores the pending jobs of a run somewhere and hands each outcome to the handler.
Runner = Callable[[Settings, BatchRun, Scan, Handler], None]


def run_local(settings: Settings, run: BatchRun, found: Scan, handle: Handler) -> None:
    """Score the pending jobs with one Reranker in this process."""
    settings = batch_settings(settings)

    async def drive(reranker: Reranker) -> None:
        outcomes = score_jobs(reranker, _jobs(run.input, found.pending), run.options, window_pairs(settings))
        async with contextlib.aclosing(outcomes):
            async for outcome in outcomes:
                if not handle(outcome):
                    return

    with Reranker(settings, model=run.options.model) as reranker:
        reranker.load()  # a model that cannot load stops the run here, once, instead of failing every job
        asyncio.run(drive(reranker))


def run_batch(settings: Settings, run: BatchRun, log: TextIO, runner: Runner | None = None) -> Tally:
    """Run one batch; problems with single jobs or lines are reported to ``log`` and counted. ``runner``
    scores the pending jobs: :func:`run_local` unless given (``rerankd.ray.data.run_ray`` for Ray)."""
    if runner is None and run.engine != "local":
        raise ConfigError(f"engine {run.engine!r} needs its runner: pass rerankd.ray.data.run_ray")
    score = runner or run_local
    began = time.perf_counter()
    done = read_done(run.output)
    found = scan(run.input, done)
    tally = Tally(skipped=found.done, bad_lines=len(found.bad))
    for bad in found.bad:
        print(f"rerankd batch: {run.input}: {bad}; skipped", file=log)
    if found.bad and run.fail_fast:
        tally.seconds = time.perf_counter() - began
        return tally
    writer = OrderedWriter(run.output, [job.key for job in found.pending])
    progress = Progress(found.pairs, len(found.pending), enabled=run.progress, stream=log)

    def handle(outcome: Outcome) -> bool:
        writer.put(outcome.key, outcome.text)
        progress.advance(outcome.pairs, failed=outcome.error is not None)
        if outcome.error is not None:
            tally.failed += 1
            progress.write(
                f"rerankd batch: job {outcome.key} (line {outcome.line}) failed: {outcome.error}; "
                "skipped (a rerun retries it)"
            )
            return not run.fail_fast
        tally.jobs += 1
        tally.pairs += outcome.pairs
        tally.tokens += outcome.tokens
        return True

    try:
        score(settings, run, found, handle)
    finally:
        progress.close()
        writer.close()
    if found.done and tally.jobs:
        restore_order(run.output, found.order)
    tally.seconds = time.perf_counter() - began
    return tally
