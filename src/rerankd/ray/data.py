"""The Ray engine of ``rerankd batch``: the pending jobs as a Ray Data dataset of chunks (byte ranges of
the input), ``map_batches`` over a pool of actors that each hold one :class:`Reranker`, results streamed
back in input order. Imported only by ``--engine ray``; needs ``pip install rerankd[ray]``.

Each actor scores a chunk with the same :func:`~rerankd.batch.engine.score_jobs` as the local engine
(the jobs of a chunk share forward passes) and returns rendered output lines, which the driver writes:
the output is the same bytes as the local engine's. The input file must be readable at the same path by
every node (a shared file system on a multi-node cluster), as must the model files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import ray
from ray.data import ActorPoolStrategy, DataContext

from rerankd.batch.engine import Outcome, batch_settings, score_jobs, window_pairs
from rerankd.batch.jobs import JobOptions, Pending, Scan, read_job
from rerankd.batch.run import BatchRun, Handler
from rerankd.config import Settings
from rerankd.serving.reranker import Reranker

__all__ = ["RerankActor", "chunks", "run_ray"]


def chunks(pending: list[Pending], pairs: int) -> Iterator[list[Pending]]:
    """Consecutive pending jobs, about ``pairs`` pairs a chunk (a larger job makes a chunk alone)."""
    chunk: list[Pending] = []
    size = 0
    for job in pending:
        if chunk and size + job.pairs > pairs:
            yield chunk
            chunk, size = [], 0
        chunk.append(job)
        size += job.pairs
    if chunk:
        yield chunk


class RerankActor:
    """One actor of the pool: a Reranker loaded once, scoring the chunks it is handed."""

    def __init__(self, settings: dict[str, Any], options: dict[str, Any], path: str) -> None:
        self.settings = batch_settings(Settings.model_validate(settings))
        self.options = JobOptions(**options)
        self.path = path
        self.reranker = Reranker(self.settings, model=self.options.model)
        self.reranker.load()

    def __call__(self, batch: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        pending = [Pending(**fields) for chunk in batch["chunk"] for fields in json.loads(str(chunk))]
        outcomes = asyncio.run(self._score(pending))
        rank = {job.key: i for i, job in enumerate(pending)}
        outcomes.sort(key=lambda outcome: rank[outcome.key])
        return {
            "key": np.array([o.key for o in outcomes], dtype=object),
            "line": np.array([o.line for o in outcomes], dtype=np.int64),
            "pairs": np.array([o.pairs for o in outcomes], dtype=np.int64),
            "text": np.array([o.text or "" for o in outcomes], dtype=object),
            "error": np.array([o.error or "" for o in outcomes], dtype=object),
            "tokens": np.array([o.tokens for o in outcomes], dtype=np.int64),
        }

    async def _score(self, pending: list[Pending]) -> list[Outcome]:
        with open(self.path, "rb") as file:
            jobs = [read_job(file, job) for job in pending]
        window = window_pairs(self.settings)
        outcomes = score_jobs(self.reranker, jobs, self.options, window)
        async with contextlib.aclosing(outcomes):
            return [outcome async for outcome in outcomes]


def run_ray(settings: Settings, run: BatchRun, found: Scan, handle: Handler) -> None:
    """Score the pending jobs on Ray Data; started here (and stopped after) unless Ray already runs."""
    if not found.pending:
        return
    options = run.ray
    started = not ray.is_initialized()
    if started:
        # Ray's own INFO lines would scroll the progress bar away; warnings still show.
        ray.init(
            address=options.address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    context = DataContext.get_current()
    kept = (context.execution_options.preserve_order, context.enable_progress_bars)
    context.execution_options.preserve_order = True  # results come back in input order
    context.enable_progress_bars = False  # rerankd's own bar counts pairs
    try:
        items = [
            {"chunk": json.dumps([asdict(job) for job in chunk])}
            for chunk in chunks(found.pending, options.chunk_pairs)
        ]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            RerankActor,
            fn_constructor_kwargs={
                "settings": settings.model_dump(mode="json"),
                "options": asdict(run.options),
                "path": str(run.input.resolve()),
            },
            batch_size=1,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=options.workers),
            num_cpus=options.num_cpus,
            num_gpus=options.num_gpus or None,
        )
        for row in dataset.iter_rows():
            outcome = Outcome(
                key=str(row["key"]),
                line=int(row["line"]),
                pairs=int(row["pairs"]),
                text=str(row["text"]) or None,
                error=str(row["error"]) or None,
                tokens=int(row["tokens"]),
            )
            if not handle(outcome):
                break
    finally:
        if started:
            ray.shutdown()
        else:  # a Ray that outlives the run (a notebook, tests) keeps its own settings
            context.execution_options.preserve_order, context.enable_progress_bars = kept
