"""How close rerankd end to end comes to its own bare forward pass: same model, same precision, same
Cranfield requests, the same packing — once as forward passes only (no HTTP, no tokenization, no queue),
once through a real ``rerankd serve`` from concurrent clients. The ratio is what the request path costs.

    .venv/bin/python benchmarks/bench_ceiling.py --model minilm-l6 --clients 8 --requests 48
"""

from __future__ import annotations

import argparse
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
from rerankd.batching import PassCost, pack
from rerankd.kinds import load_model
from rerankd.scheduler import WINDOW_BUDGETS, measure_pass_cost
from rerankd.types import ScoreOptions


def bare_forward(spec: TransformerSpec, requests: list[dict[str, Any]], clients: int, budget: int) -> float:
    """Pairs per second of the forward passes alone, packed as the worker packs ``clients`` requests."""
    backend = load_model(spec)
    assert isinstance(backend, BatchedBackend)
    backend.forward(backend.prepare("warm up", ["warm up"], ScoreOptions()).inputs)
    cost = measure_pass_cost(backend, budget)
    print(f"{spec.name} ({backend.precision}): a pass costs {cost.describe()}", flush=True)
    prepared = [backend.prepare(r["query"], r["documents"], ScoreOptions()).inputs for r in requests]
    windows = [
        [item for inputs in prepared[i : i + clients] for item in inputs]
        for i in range(0, len(prepared), clients)
    ]
    _passes(backend, windows, budget, cost)  # a first round unmeasured: kernels for new shapes are built once
    seconds = _passes(backend, windows, budget, cost)
    return sum(len(r["documents"]) for r in requests) / seconds


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


def served(config: dict[str, Any], requests: list[dict[str, Any]], clients: int, workdir: Path) -> float:
    """Pairs per second through a real server, ``clients`` at a time."""
    with rerankd_server(config, workdir, env={"RERANKD_DATABASE_URL": "none"}) as server:
        with httpx.Client(timeout=600) as warm:
            warm.post(f"{server.url}/v1/rerank", json=requests[0]).raise_for_status()

        def send(body: dict[str, Any]) -> None:
            with httpx.Client(timeout=600) as client:
                client.post(f"{server.url}/v1/rerank", json=body).raise_for_status()

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, requests))  # unmeasured, as for the bare passes
            began = time.perf_counter()
            list(pool.map(send, requests))
        return sum(len(r["documents"]) for r in requests) / (time.perf_counter() - began)


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
    bare = bare_forward(spec, requests, args.clients, args.budget)
    print(f"bare forward: {bare:.1f} pairs/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        end_to_end = served({"models": [model]}, requests, args.clients, Path(tmp))
    print(f"through the server ({args.clients} clients): {end_to_end:.1f} pairs/s")
    print("\n| model | dtype | bare forward pairs/s | server pairs/s | % of bare |")
    print("|---|---|---:|---:|---:|")
    print(f"| {args.model} | {args.dtype} | {bare:.1f} | {end_to_end:.1f} | {100 * end_to_end / bare:.0f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
