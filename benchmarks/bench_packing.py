"""Packing strategies on this device: padding waste and throughput of the same forward passes.

The scheduler's worker takes a window of pending inputs (from one request, or from several that
arrived together) and cuts it into forward passes. This script builds such windows from Cranfield
requests, tokenized by rerankd's own cross-encoder backend, and runs every window through the
backend's forward pass under each strategy:

- ``greedy``: sort by length, fill each pass up to the token budget (rerankd before 0.2);
- ``dp-tokens``: the cost-minimising split of :func:`rerankd.serving.batching.pack` counting a pass as a fixed
  overhead plus its padded tokens (the packing before the cost was measured over batch shapes);
- ``dp``: the same split minimising the pass time this model shows on this device, in its precision
  (:func:`rerankd.serving.scheduler.measure_pass_cost`: fixed + per token + per token and position).

Each model's measured cost curve (predicted against timed seconds over batch shapes) and the batches the
packing chooses for one window are printed before the strategies are compared.

Each at several budgets (``--budgets``). Strategies alternate for ``--rounds`` rounds and each keeps
its fastest round, so that interference from other work on the machine hits them alike. It reports
real and padded tokens, padding waste, passes, pairs/s and the ratio to greedy at the budget rerankd
used before (8192), per model and window size.
No HTTP here: this isolates packing from everything else (``bench_perf.py`` measures the server).

    .venv/bin/python benchmarks/bench_packing.py --out benchmarks/results/packing
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rerankd_support import cranfield
from rerankd_support.bench.options import csv_list
from rerankd_support.bench.servers import ensure_model
from rerankd_support.paths import BENCH_CACHE

from rerankd.backends.base import BatchedBackend, Encoded
from rerankd.backends.specs import TransformerSpec
from rerankd.kinds import load_model
from rerankd.serving.batching import PassCost, pack, padded_tokens
from rerankd.serving.scheduler import measure_pass_cost
from rerankd.types import ScoreOptions

Packer = Callable[[Sequence[int], int, int], list[list[int]]]


def greedy(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """The packing rerankd used first: sorted, each pass filled up to the budget."""
    batches: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if current and ((len(current) + 1) * lengths[index] > max_tokens or len(current) == max_rows):
            batches.append(current)
            current = []
        current.append(index)
    return [*batches, current] if current else batches


def windows(backend: BatchedBackend, requests: list[dict[str, Any]], per_window: int) -> list[list[Encoded]]:
    """Inputs of ``per_window`` consecutive requests, as the worker would see them together."""
    prepared = [backend.prepare(r["query"], r["documents"], ScoreOptions()).inputs for r in requests]
    return [
        [item for inputs in prepared[start : start + per_window] for item in inputs]
        for start in range(0, len(prepared) - per_window + 1, per_window)
    ]


def run_strategy(work: list[list[Encoded]], packer: Packer, budget: int, seconds: float) -> dict[str, Any]:
    """Counts of one strategy's passes; ``seconds`` is its time over the whole work (best round)."""
    real = padded = passes = pairs = 0
    for inputs in work:
        lengths = [len(item) for item in inputs]
        batches = packer(lengths, budget, 256)
        real += sum(lengths)
        padded += padded_tokens(lengths, batches)
        passes += len(batches)
        pairs += len(inputs)
    return {
        "real_tokens": real,
        "padded_tokens": padded,
        "padding": 1 - real / padded,
        "passes": passes,
        "seconds": seconds,
        "pairs_per_s": pairs / seconds,
        "real_tokens_per_s": real / seconds,
    }


def time_strategy(backend: BatchedBackend, work: list[list[Encoded]], packer: Packer, budget: int) -> float:
    began = time.perf_counter()
    for inputs in work:
        for batch in packer([len(item) for item in inputs], budget, 256):
            backend.forward([inputs[i] for i in batch])
    return time.perf_counter() - began


def print_cost_curve(backend: BatchedBackend, cost: PassCost, window: list[Encoded], budget: int) -> None:
    """Predicted against timed seconds of passes over a few shapes, and the batches chosen for a window."""
    template = max(window, key=len)
    print("  rows x tokens   timed ms   predicted ms")
    for length in (32, 128, 256):
        item = Encoded(
            list(template.input_ids[:length]),
            list(template.token_type_ids[:length]) if template.token_type_ids is not None else None,
        )
        for rows in (1, 8, max(1, budget // max(1, len(item)))):
            began = time.perf_counter()
            backend.forward([item] * rows)
            timed, predicted = time.perf_counter() - began, cost.cost(rows, len(item))
            print(f"  {rows:4d} x {len(item):4d}   {timed * 1000:8.2f}   {predicted * 1000:8.2f}")
    lengths = [len(item) for item in window]
    shapes = [f"{len(batch)}x{max(lengths[i] for i in batch)}" for batch in pack(lengths, budget, 256, cost)]
    print(f"  batches chosen for a window of {len(window)} inputs: {' '.join(shapes)}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=csv_list(str), default=["minilm-l6", "bert-base"])
    parser.add_argument("--docs", type=int, default=20, help="documents per request [20]")
    parser.add_argument(
        "--windows", type=csv_list(int), default=[1, 8], help="requests packed together [1,8]"
    )
    parser.add_argument(
        "--budgets", type=csv_list(int), default=[4096, 8192], help="max_batch_tokens [4096,8192]"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds; each strategy keeps its best [3]"
    )
    parser.add_argument("--default-budget", type=int, default=8192, help="the ratios' baseline budget")
    parser.add_argument("--requests", type=int, default=8, help="requests per measurement (minilm-l6) [8]")
    parser.add_argument("--bert-base-requests", type=int, default=8, help="[8]")
    parser.add_argument("--cache", type=Path, default=BENCH_CACHE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write results.md and results.json here")
    cranfield.add_argument(parser)
    args = parser.parse_args(argv)

    data = cranfield.load(args.cranfield)
    rows: list[dict[str, Any]] = []
    for model in args.models:
        folder = ensure_model(model, args.cache, args.seed)
        spec = TransformerSpec(name=model, kind="cross-encoder", source=str(folder), device="cpu")
        backend = load_model(spec)
        assert isinstance(backend, BatchedBackend)
        backend.forward(backend.prepare("warm up", ["warm up"], ScoreOptions()).inputs)
        cost = measure_pass_cost(backend, max(args.budgets))
        overhead = cost.fixed / cost.per_token
        print(
            f"{model}: a forward pass costs {cost.describe()} ({overhead:.0f} tokens' worth fixed)",
            flush=True,
        )
        count = args.bert_base_requests if model == "bert-base" else args.requests
        requests = cranfield.make_requests(args.docs, count, args.seed, data=data)
        print_cost_curve(
            backend, cost, windows(backend, requests, min(8, len(requests)))[0], max(args.budgets)
        )

        def dp_tokens(
            lengths: Sequence[int], budget: int, rows_: int, o: float = overhead
        ) -> list[list[int]]:
            return pack(lengths, budget, rows_, o)

        def dp(lengths: Sequence[int], budget: int, rows_: int, c: PassCost = cost) -> list[list[int]]:
            return pack(lengths, budget, rows_, c)

        strategies: dict[str, Packer] = {"greedy": greedy, "dp-tokens": dp_tokens, "dp": dp}
        for per_window in args.windows:
            work = windows(backend, requests, per_window)
            for budget in args.budgets:
                best = dict.fromkeys(strategies, float("inf"))
                for _ in range(args.rounds):
                    for name, packer in strategies.items():
                        best[name] = min(best[name], time_strategy(backend, work, packer, budget))
                for name, packer in strategies.items():
                    result = run_strategy(work, packer, budget, best[name])
                    row = {"model": model, "window": per_window, "budget": budget, "strategy": name}
                    row |= result | {"overhead_tokens": round(overhead, 1)}
                    rows.append(row)
                    print(
                        f"  {model} window={per_window} budget={budget} {name}: "
                        f"{result['pairs_per_s']:.1f} pairs/s, padding {100 * result['padding']:.1f}%, "
                        f"{result['passes']} passes",
                        flush=True,
                    )
    table = render(rows, args.default_budget)
    print("\n" + table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.md").write_text(table + "\n", encoding="utf-8")
        (args.out / "results.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def render(rows: list[dict[str, Any]], default_budget: int) -> str:
    baseline = {
        (r["model"], r["window"]): r["pairs_per_s"]
        for r in rows
        if r["strategy"] == "greedy" and r["budget"] == default_budget
    }
    lines = [
        f"| model | requests per window | budget | strategy | padding | passes | pairs/s | real tok/s | "
        f"÷ greedy@{default_budget} |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        base = baseline.get((r["model"], r["window"]))
        ratio = f"{r['pairs_per_s'] / base:.2f}x" if base else "-"
        lines.append(
            f"| {r['model']} | {r['window']} | {r['budget']} | {r['strategy']} | {100 * r['padding']:.1f}% | "
            f"{r['passes']} | {r['pairs_per_s']:.1f} | {r['real_tokens_per_s']:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
