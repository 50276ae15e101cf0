"""How close rerankd end to end comes to its own bare forward pass: same model, same precision, same
Cranfield requests, the same packing — as forward passes only (no HTTP, no tokenization, no queue) and
through a real ``rerankd serve`` from concurrent clients, in alternating rounds. The ratio is what the
request path costs.

    .venv/bin/python benchmarks/bench_ceiling.py --model minilm-l6 --clients 8 --requests 48
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rerankd_support import cranfield
from rerankd_support.bench.servers import ensure_model
from rerankd_support.harness import rerankd_server
from rerankd_support.paths import BENCH_CACHE

from rerankd.backends.base import BatchedBackend, Encoded
from rerankd.backends.specs import TransformerSpec
from rerankd.kinds import load_model
from rerankd.serving.batching import PassCost, pack
from rerankd.serving.scheduler import WINDOW_BUDGETS, measure_pass_cost
from rerankd.types import ScoreOptions


class Bare:
    """The forward passes alone, packed as the worker packs ``clients`` requests at a time."""

    def __init__(
        self, spec: TransformerSpec, requests: list[dict[str, Any]], clients: int, budget: int
    ) -> None:
        backend = load_model(spec)
        assert isinstance(backend, BatchedBackend)
        backend.forward(backend.prepare("warm up", ["warm up"], ScoreOptions()).inputs)
        self.backend, self.budget = backend, budget
        self.cost = measure_pass_cost(backend, budget)
        print(f"{spec.name} ({backend.precision}): a pass costs {self.cost.describe()}", flush=True)
        prepared = [backend.prepare(r["query"], r["documents"], ScoreOptions()).inputs for r in requests]
        self.windows = [
            [item for inputs in prepared[i : i + clients] for item in inputs]
            for i in range(0, len(prepared), clients)
        ]
        self.pairs = sum(len(r["documents"]) for r in requests)
        self.rate()  # a first round unmeasured: kernels for new shapes are built once

    def rate(self) -> float:
        """Pairs per second of one round over all the requests."""
        return self.pairs / _passes(self.backend, self.windows, self.budget, self.cost)


def _passes(backend: BatchedBackend, windows: list[list[Encoded]], budget: int, cost: PassCost) -> float:
    seconds = 0.0
    for window in windows:
        limit = budget * WINDOW_BUDGETS  # the worker packs this many tokens at a time
        chunks: list[list[Encoded]] = []
        current: list[Encoded] = []
        tokens = 0
        for item in window:
            if tokens >= limit:
                chunks.append(current)
                current, tokens = [], 0
            current.append(item)
            tokens += len(item)
        chunks.append(current)
        for chunk in chunks:
            for batch in pack([len(item) for item in chunk], budget, 256, cost):
                began = time.perf_counter()
                backend.forward([chunk[i] for i in batch])
                seconds += time.perf_counter() - began
    return seconds


class Served:
    """The same requests through a real server, ``clients`` at a time (start it with ``with``)."""

    def __init__(self, config: dict[str, Any], requests: list[dict[str, Any]], clients: int, workdir: Path):
        self.server = rerankd_server(config, workdir, env={"RERANKD_DATABASE_URL": "none"})
        self.requests, self.clients = requests, clients
        self.pairs = sum(len(r["documents"]) for r in requests)

    def __enter__(self) -> Served:
        self.url = self.server.__enter__().url
        self.pool = ThreadPoolExecutor(self.clients)
        self.rate()  # unmeasured, as for the bare passes
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown()
        self.server.__exit__(None, None, None)

    def _send(self, body: dict[str, Any]) -> None:
        with httpx.Client(timeout=600) as client:
            client.post(f"{self.url}/v1/rerank", json=body).raise_for_status()

    def rate(self) -> float:
        began = time.perf_counter()
        list(self.pool.map(self._send, self.requests))
        return self.pairs / (time.perf_counter() - began)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="minilm-l6", help="generated cross-encoder shape [minilm-l6]")
    parser.add_argument("--dtype", default="auto", help="the model's dtype [auto]")
    parser.add_argument("--docs", type=int, default=20, help="documents per request [20]")
    parser.add_argument("--requests", type=int, default=48, help="requests [48]")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients [8]")
    parser.add_argument("--max-length", type=int, default=256, help="the model's window [256]")
    parser.add_argument("--budget", type=int, default=4096, help="max_batch_tokens [4096]")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare / served rounds [3]")
    parser.add_argument("--cache", type=Path, default=BENCH_CACHE)
    cranfield.add_argument(parser)
    args = parser.parse_args(argv)
    folder = ensure_model(args.model, args.cache, 0)
    requests = cranfield.make_requests(args.docs, args.requests, 0, data=cranfield.load(args.cranfield))
    for body in requests:
        body["model"] = args.model
    model = {
        "name": args.model,
        "kind": "cross-encoder",
        "source": str(folder),
        "device": "cpu",
        "dtype": args.dtype,
        "max_length": args.max_length,
        "max_batch_tokens": args.budget,
        "preload": True,
    }
    spec = TransformerSpec.model_validate(model)
    bare = Bare(spec, requests, args.clients, args.budget)
    rounds: list[tuple[float, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        Served({"models": [model]}, requests, args.clients, Path(tmp)) as served,
    ):
        # Rounds alternate, so that drift of a shared machine hits both sides alike.
        for number in range(1, args.rounds + 1):
            rounds.append((bare.rate(), served.rate()))
            print(f"round {number}: bare {rounds[-1][0]:.1f}, server {rounds[-1][1]:.1f} pairs/s", flush=True)
    ratios = sorted(server / alone for alone, server in rounds)
    best_bare, best_served = max(r[0] for r in rounds), max(r[1] for r in rounds)
    print(
        "\n| model | dtype | bare forward pairs/s (best) | server pairs/s (best) "
        "| % of bare: median round, best/best |"
    )
    print("|---|---|---:|---:|---:|")
    print(
        f"| {args.model} | {args.dtype} | {best_bare:.1f} | {best_served:.1f} | "
        f"{100 * statistics.median(ratios):.0f}%, {100 * best_served / best_bare:.0f}% |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
