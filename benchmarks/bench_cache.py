"""The output cache (``cache_mb``) on repeated candidates: Cranfield queries reranking overlapping BM25 hits.

Workload: BM25 (bm25s, with rerankd's BM25 tokenizer) over the 1400 Cranfield abstracts gives each of the
first ``--queries`` judged queries its ``--top-k`` candidates. Queries on related topics share candidates,
as in a RAG pipeline that reranks the same passages over and over. A bi-encoder (the bundled real
all-MiniLM-L6-v2) scores the workload in-process through :class:`rerankd.serving.scheduler.BatchingScorer` (no
HTTP), ``--concurrency`` requests in flight, in three ways:

- ``no cache``;
- ``cache, one pass``: a cold cache; hits are the documents (and queries) earlier requests embedded;
- ``cache, again``: the same workload once more (exact repeats): every input hits.

``--kind late-interaction`` scores it with a random ColBERT of answerai-colbert-small-v1's shape instead
(generated into ``.cache/bench-models/`` on first use): its cache keeps each document's token vectors.

It reports pairs/s, the hit rate (inputs served from the cache / inputs looked up, queries included),
the speed-up, and the largest score difference from the run without a cache. A fresh pass is itself not
reproducible to the last bit across batch compositions (fp32 GEMM kernels change with the number of rows),
so the table also shows that noise: the run without a cache against the same requests scored one at a
time (``--noise-requests`` of them).

    .venv/bin/python benchmarks/bench_cache.py                     # fp32, ~1 min on 2 CPUs
    .venv/bin/python benchmarks/bench_cache.py --dtypes fp32,auto --queries 30 --top-k 20
    .venv/bin/python benchmarks/bench_cache.py --kind late-interaction
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rerankd_support import cranfield
from rerankd_support.bench.options import csv_list
from rerankd_support.bench.tables import environment, markdown_table
from rerankd_support.models import bundled_minilm_path, make_late_interaction
from rerankd_support.paths import BENCH_CACHE

from rerankd.backends.base import BatchedBackend
from rerankd.evaluate.first_stage import bm25_run
from rerankd.kinds import load_model, model_spec
from rerankd.serving.scheduler import BatchingScorer
from rerankd.types import ScoreOptions

Request = tuple[str, tuple[str, ...]]


@dataclass
class Run:
    label: str
    seconds: float
    pairs: int
    scores: list[tuple[float, ...]]
    hits: int = 0
    lookups: int = 0


def workload(data: cranfield.Cranfield, queries: int, top_k: int) -> list[Request]:
    """The first ``queries`` judged queries, each with its BM25 top ``top_k`` abstracts."""
    run = bm25_run(data, data.judged_queries()[:queries], top_k)
    return [
        (data.queries[query], tuple(data.documents[doc] for doc in ranked)) for query, ranked in run.items()
    ]


async def score_all(scorer: BatchingScorer, requests: Sequence[Request], concurrency: int) -> list[Any]:
    """Every request's scores, ``concurrency`` requests in flight, in request order."""
    results: list[Any] = [None] * len(requests)
    queue = list(enumerate(requests))[::-1]

    async def client() -> None:
        while queue:
            index, (query, documents) = queue.pop()
            results[index] = (await scorer.score(query, documents, ScoreOptions())).scores

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


async def measure(
    backend: BatchedBackend, identity: str, requests: list[Request], args: argparse.Namespace
) -> tuple[list[Run], float]:
    def scorer(cache_mb: float) -> BatchingScorer:
        return BatchingScorer(
            "bench",
            backend,
            max_batch_tokens=backend.batch_tokens,
            max_batch_size=256,
            max_queue_pairs=1_000_000,
            cache_bytes=int(cache_mb * 2**20),
            cache_identity=identity,
        )

    pairs = sum(len(documents) for _, documents in requests)

    async def timed(target: BatchingScorer, label: str) -> Run:
        before = target.info().cache
        began = time.perf_counter()
        scores = await score_all(target, requests, args.concurrency)
        run = Run(label, time.perf_counter() - began, pairs, scores)
        print(f"  {label}: {pairs / run.seconds:,.1f} pairs/s", file=sys.stderr, flush=True)
        after = target.info().cache
        if before is not None and after is not None:
            run.hits = after.hits - before.hits
            run.lookups = run.hits + after.misses - before.misses
        return run

    plain = scorer(0)
    await score_all(plain, requests[:1], 1)  # warm up
    uncached = await timed(plain, "no cache")
    one_at_a_time = await score_all(plain, requests[: args.noise_requests], 1)
    noise = max_difference(one_at_a_time, uncached.scores[: args.noise_requests])
    await plain.close()
    cached = scorer(args.cache_mb)
    cold = await timed(cached, "cache, one pass")
    warm = await timed(cached, "cache, again")
    await cached.close()
    return [uncached, cold, warm], noise


def max_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    return max(abs(x - y) for one, other in zip(a, b, strict=True) for x, y in zip(one, other, strict=True))


def same_top(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], k: int = 10) -> float:
    """The share of requests whose top ``k`` documents come in the same order."""

    def top(scores: Sequence[float]) -> list[int]:
        return sorted(range(len(scores)), key=lambda i: -scores[i])[:k]

    return sum(top(x) == top(y) for x, y in zip(a, b, strict=True)) / len(a)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=30, help="judged queries, in number order [30]")
    parser.add_argument("--top-k", type=int, default=20, help="BM25 candidates per query [20]")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight [8]")
    parser.add_argument("--cache-mb", type=float, default=64, help="the cache's size [64]")
    parser.add_argument("--dtypes", type=csv_list(str), default=["fp32"], help="precisions [fp32]")
    parser.add_argument(
        "--kind",
        choices=["bi-encoder", "late-interaction"],
        default="bi-encoder",
        help="the bundled all-MiniLM-L6-v2, or a random answerai-colbert-small-v1 shape [bi-encoder]",
    )
    parser.add_argument(
        "--noise-requests", type=int, default=2, help="requests scored one at a time for the noise [2]"
    )
    cranfield.add_argument(parser)
    args = parser.parse_args(argv)

    requests = workload(cranfield.load(args.cranfield), args.queries, args.top_k)
    candidates = [document for _, documents in requests for document in documents]
    env = environment()
    source, model = str(bundled_minilm_path()), "bi-encoder all-MiniLM-L6-v2"
    if args.kind == "late-interaction":
        folder = BENCH_CACHE / "answerai-colbert-small-shaped"
        if not (folder / "modules.json").exists():
            make_late_interaction(folder, tokenizer_from=bundled_minilm_path())
        source, model = str(folder), "late-interaction answerai-colbert-small-v1 shape (random)"
    print(
        f"{len(requests)} requests, {len(candidates)} candidates, {len(set(candidates))} distinct "
        f"({1 - len(set(candidates)) / len(candidates):.0%} repeats); {model}; "
        f"{args.concurrency} in flight; {env['cpus']} CPUs, torch {env['versions'].get('torch')}\n"
    )
    rows = []
    for dtype in args.dtypes:
        entry = {"name": "bench", "kind": args.kind, "source": source, "dtype": dtype}
        spec = model_spec({**entry, "device": "cpu"})
        backend: BatchedBackend = load_model(spec)
        runs, noise = asyncio.run(measure(backend, spec.model_dump_json(), requests, args))
        baseline = runs[0]
        for run in runs:
            cached = run is not baseline
            rows.append(
                [
                    f"{dtype} ({backend.precision})",
                    run.label,
                    f"{run.pairs / run.seconds:,.1f}",
                    f"{run.pairs / run.seconds / (baseline.pairs / baseline.seconds):.2f}x",
                    f"{run.hits / run.lookups:.0%}" if run.lookups else "-",
                    f"{max_difference(run.scores, baseline.scores):.1e}" if cached else f"noise {noise:.1e}",
                    f"{same_top(run.scores, baseline.scores):.0%}" if cached else "-",
                ]
            )
    columns = [
        ("precision", False),
        ("run", False),
        ("pairs/s", True),
        ("vs no cache", True),
        ("hit rate", True),
        ("max abs score diff vs no cache", True),
        ("same top-10", True),
    ]
    print(markdown_table(columns, rows))


if __name__ == "__main__":
    main()
