"""Scoring jobs through a :class:`~rerankd.serving.reranker.Reranker`, many at once, as both engines do.

Jobs are submitted concurrently up to a window of pairs in flight, so the model's scheduler packs the
documents of many jobs into shared forward passes (as it packs concurrent HTTP requests), while memory
stays bounded however large the input. Each job's outcome is its rendered output line, or why it failed.
The local engine runs this over the whole input in one process; each Ray Data actor runs it over the
chunks it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass

from rerankd.batch.jobs import Job, JobOptions, render
from rerankd.config import Settings
from rerankd.errors import Overloaded, RerankdError
from rerankd.serving.reranker import Reranker

__all__ = ["Outcome", "batch_settings", "score_jobs", "window_pairs"]

# An Overloaded model (queue bounds) is waited for, never reported: a batch has no client to shed.
OVERLOADED_TRIES = 100


@dataclass(frozen=True, slots=True)
class Outcome:
    key: str
    line: int
    pairs: int
    text: str | None  # the output line; None if the job failed
    error: str | None = None
    tokens: int = 0


def batch_settings(settings: Settings) -> Settings:
    """The server's settings, without the bound on queued seconds: it protects the latency of online
    clients, while a batch keeps a window of work queued on purpose."""
    return settings.model_copy(update={"max_queue_seconds": 1e9})


def window_pairs(settings: Settings) -> int:
    """Pairs in flight: a few forward passes' worth, so the scheduler always has the next pass packed."""
    return min(settings.max_queue_pairs, max(1024, 4 * settings.max_batch_size))


async def _score(reranker: Reranker, job: Job, options: JobOptions) -> Outcome:
    request = reranker.request(
        job.query,
        job.documents,
        model=options.model,
        top_n=job.top_n if job.top_n is not None else options.top_n,
        return_documents=options.return_documents,
        instruction=job.instruction if job.instruction is not None else options.instruction,
        raw_scores=options.raw_scores,
    )
    for _ in range(OVERLOADED_TRIES):
        try:
            ranking = await reranker.arerank_request(request)
        except Overloaded as exc:
            await asyncio.sleep(exc.retry_after)
            continue
        except RerankdError as exc:
            return Outcome(job.key, job.line, len(job.documents), None, exc.message)
        return Outcome(
            job.key, job.line, len(job.documents), render(job, ranking), tokens=ranking.usage.total_tokens
        )
    return Outcome(job.key, job.line, len(job.documents), None, "the model stayed overloaded")


async def score_jobs(
    reranker: Reranker, jobs: Iterable[Job], options: JobOptions, window: int
) -> AsyncGenerator[Outcome, None]:
    """Outcomes as jobs finish (not in input order). Closing the iterator early cancels the jobs in
    flight: use ``contextlib.aclosing``."""
    running: dict[asyncio.Task[Outcome], int] = {}
    in_flight = 0
    upcoming = iter(jobs)
    job = next(upcoming, None)
    try:
        while job is not None or running:
            # A job larger than the window still goes, alone.
            while job is not None and (not running or in_flight + len(job.documents) <= window):
                running[asyncio.create_task(_score(reranker, job, options))] = len(job.documents)
                in_flight += len(job.documents)
                job = next(upcoming, None)
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                in_flight -= running.pop(task)
                yield task.result()
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
