"""How close rerankd end to end comes to its own bare forward pass, and to the machine's matmul peak: same
model, same precision, same Cranfield requests, the same packing — as forward passes only (no HTTP, no
tokenization, no queue) and through a real ``rerankd serve`` from concurrent clients, in alternating
rounds. The ratio is what the request path costs.

Each threads layout (``--layouts``; rerankd's ``threads_layout``) runs both ways: ``single``, one worker
whose passes use every core; ``parallel``, one worker per core on one OpenMP thread each (the bare passes
then run in as many threads, taking batches from one list). The server of each layout is started with it
set, so ``auto``'s choice is seen apart from what each layout reaches. GFLOP/s count each input's useful
FLOPs (``Arch.pair_flops`` at its real length; an LLM reranker's shared prompt counted in every row, as a
server without prefix sharing would compute it) and are given as a share of the matmul peak of the
precision ``dtype: auto`` computes in here (measured first, ``rerankd_support.bench.peak``).

    .venv/bin/python benchmarks/bench_ceiling.py --model minilm-l6 --clients 8 --requests 48
    .venv/bin/python benchmarks/bench_ceiling.py --model qwen3-0.6b --docs 10 --requests 8 --clients 4 \
        --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from rerankd_support import cranfield
from rerankd_support.bench.peak import cpu_description, measure_peak, reference_peak
from rerankd_support.bench.servers import ARCHS, LLM_ARCHS, ensure_model, kind_of_arch
from rerankd_support.bench.workloads import Arch
from rerankd_support.harness import rerankd_server
from rerankd_support.paths import BENCH_CACHE

from rerankd.backends.base import BatchedBackend, Encoded
from rerankd.backends.threads import default_threads, use_threads
from rerankd.kinds import load_model, model_spec
from rerankd.serving.batching import PassCost, pack
from rerankd.serving.layout import layout_of
from rerankd.serving.scheduler import WINDOW_BUDGETS, measure_pass_cost
from rerankd.types import ScoreOptions, ThreadsLayout


class Bare:
    """The forward passes alone, packed as the workers pack ``clients`` requests at a time."""

    def __init__(
        self,
        spec: Any,
        requests: list[dict[str, Any]],
        clients: int,
        budget: int,
        layouts: Sequence[str],
        arch: Arch,
    ) -> None:
        use_threads(default_threads())
        backend = load_model(spec)
        assert isinstance(backend, BatchedBackend)
        backend.forward(backend.prepare("warm up", ["warm up"], ScoreOptions()).inputs)
        self.backend, self.budget = backend, budget
        cores = default_threads()
        self.layouts: dict[str, ThreadsLayout] = {name: layout_of(name, "bench", cores) for name in layouts}  # type: ignore[arg-type]
        self.costs: dict[str, PassCost] = {}
        for name, layout in self.layouts.items():
            self.costs[name] = measure_pass_cost(backend, budget, layout=layout)
            cost = self.costs[name].describe()
            print(f"{spec.name} ({backend.precision}), {layout.describe()}: a pass costs {cost}", flush=True)
        prepared = [backend.prepare(r["query"], r["documents"], ScoreOptions()).inputs for r in requests]
        self.windows = [
            [item for inputs in prepared[i : i + clients] for item in inputs]
            for i in range(0, len(prepared), clients)
        ]
        self.pairs = sum(len(r["documents"]) for r in requests)
        self.flops = sum(arch.pair_flops(len(item)) for inputs in prepared for item in inputs)
        for name in self.layouts:
            self.rate(name)  # a first round unmeasured: kernels for new shapes are built once

    def rate(self, layout: str) -> float:
        """Pairs per second of one round over all the requests, in ``layout``."""
        batches = _batches(self.windows, self.budget, self.costs[layout])
        return self.pairs / _run(self.backend, batches, self.layouts[layout])


def _batches(windows: list[list[Encoded]], budget: int, cost: PassCost) -> list[list[Encoded]]:
    """The passes the worker makes of these windows: each cut into chunks of the window's token count and
    packed."""
    batches: list[list[Encoded]] = []
    limit = budget * WINDOW_BUDGETS  # the worker packs this many tokens at a time
    for window in windows:
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
            batches += [
                [chunk[i] for i in batch] for batch in pack([len(item) for item in chunk], budget, 256, cost)
            ]
    return batches


def _run(backend: BatchedBackend, batches: list[list[Encoded]], layout: ThreadsLayout) -> float:
    """Seconds for ``layout``'s workers to run every batch, each taking the next one left."""
    lock = threading.Lock()
    left = iter(batches)

    def worker() -> None:
        use_threads(layout.threads)
        while True:
            with lock:
                batch = next(left, None)
            if batch is None:
                return
            backend.forward(batch)

    threads = [threading.Thread(target=worker) for _ in range(layout.workers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


class Served:
    """The same requests through a real server, ``clients`` at a time (start it with ``with``)."""

    def __init__(self, config: dict[str, Any], requests: list[dict[str, Any]], clients: int, workdir: Path):
        self.server = rerankd_server(config, workdir, env={"RERANKD_DATABASE_URL": "none"}, start_timeout=600)
        self.requests, self.clients = requests, clients
        self.pairs = sum(len(r["documents"]) for r in requests)

    def __enter__(self) -> Served:
        self.url = self.server.__enter__().url
        self.pool = ThreadPoolExecutor(self.clients)
        try:
            self.rate()  # unmeasured, as for the bare passes
        except BaseException:  # __exit__ is not called when __enter__ fails: stop the server here
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown()
        self.server.__exit__(None, None, None)

    def _send(self, body: dict[str, Any]) -> None:
        with httpx.Client(timeout=1200) as client:
            client.post(f"{self.url}/v1/rerank", json=body).raise_for_status()

    def layout(self) -> str:
        """What the server says of its model's layout (``/v1/models``)."""
        with httpx.Client(timeout=30) as client:
            cards = client.get(f"{self.url}/v1/models").raise_for_status().json()["data"]
        return str(cards[0].get("threads_layout"))

    def rate(self) -> float:
        began = time.perf_counter()
        list(self.pool.map(self._send, self.requests))
        return self.pairs / (time.perf_counter() - began)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="minilm-l6", choices=[*ARCHS, *LLM_ARCHS], help="generated model shape [minilm-l6]"
    )
    parser.add_argument("--dtype", default="auto", help="the model's dtype [auto]")
    parser.add_argument("--docs", type=int, default=20, help="documents per request [20]")
    parser.add_argument("--requests", type=int, default=48, help="requests [48]")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients [8]")
    parser.add_argument("--max-length", type=int, default=256, help="the model's window [256]")
    parser.add_argument("--budget", type=int, default=4096, help="max_batch_tokens [4096]")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare / served rounds [3]")
    parser.add_argument(
        "--layouts",
        default="single,parallel",
        help="threads layouts, each bare and served; `auto` adds a server left to choose [single,parallel]",
    )
    parser.add_argument("--no-peak", action="store_true", help="skip the matmul peak (about 10 s)")
    parser.add_argument("--cache", type=Path, default=BENCH_CACHE)
    cranfield.add_argument(parser)
    args = parser.parse_args(argv)
    layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    bare_layouts = [name for name in layouts if name != "auto"] or ["single"]
    cpu = cpu_description()
    print(f"{cpu['model']}; flags: {', '.join(flag for flag, on in cpu['flags'].items() if on)}", flush=True)
    reference, peak = (None, None) if args.no_peak else reference_peak(measure_peak())
    if peak:
        print(f"matmul peak ({reference}, {default_threads()} threads): {peak:.0f} GFLOP/s", flush=True)
    folder = ensure_model(args.model, args.cache, 0)
    arch = Arch.from_folder(folder)
    requests = cranfield.make_requests(args.docs, args.requests, 0, data=cranfield.load(args.cranfield))
    for body in requests:
        body["model"] = args.model
    model = {
        "name": args.model,
        "kind": kind_of_arch(args.model),
        "source": str(folder),
        "device": "cpu",
        "dtype": args.dtype,
        "max_length": args.max_length,
        "max_batch_tokens": args.budget,
        "preload": True,
    }
    bare = Bare(model_spec(model), requests, args.clients, args.budget, bare_layouts, arch)
    rounds: dict[str, list[float]] = {f"bare {name}": [] for name in bare_layouts}
    rounds.update({f"served {name}": [] for name in layouts})
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        served = {
            name: servers.enter_context(
                # Throughput, not shedding: no 429 for a queue that a busy machine computes slowly.
                Served(
                    {
                        "models": [model],
                        "threads_layout": name,
                        "max_queue_seconds": 3600,
                        "request_timeout": 3600,
                    },
                    requests,
                    args.clients,
                    Path(tmp),
                )
            )
            for name in layouts
        }
        for name, server in served.items():
            print(f"server {name}: {server.layout()}", flush=True)
        # Rounds alternate, so that drift of a shared machine hits every side alike.
        for number in range(1, args.rounds + 1):
            for name in bare_layouts:
                rounds[f"bare {name}"].append(bare.rate(name))
            for name, server in served.items():
                rounds[f"served {name}"].append(server.rate())
            print(
                f"round {number}: "
                + ", ".join(f"{side} {rates[-1]:.2f}" for side, rates in rounds.items())
                + " pairs/s",
                flush=True,
            )
    # The ceiling of a round: the bare passes of the same layout (auto: the best bare layout of the round).
    best_bare = [max(rounds[f"bare {name}"][r] for name in bare_layouts) for r in range(args.rounds)]
    gflop = bare.flops / bare.pairs / 1e9  # per pair
    print(
        f"\n{args.model}, {arch.linear_flops_per_token / 1e6:.0f} MFLOP per token in the linear layers, "
        f"{gflop:.2f} GFLOP per pair on these requests; {args.requests} requests x {args.docs} documents, "
        f"{args.clients} clients, dtype {args.dtype}, max_length {args.max_length}; {args.rounds} rounds\n"
    )
    print(
        "| model | side | pairs/s (best) | GFLOP/s (best) | % of peak "
        "| % of the same layout's bare: median round, best/best | % of the best bare: median round |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for side, rates in rounds.items():
        layout = side.split()[1]
        own = rounds.get(f"bare {layout}") or best_bare
        best = max(rates)
        share = f"{100 * best * gflop / peak:.0f}%" if peak else "-"
        to_own = sorted(rate / alone for rate, alone in zip(rates, own, strict=True))
        to_best = sorted(rate / alone for rate, alone in zip(rates, best_bare, strict=True))
        print(
            f"| {args.model} | {side} | {best:.2f} | {best * gflop:.1f} | {share} | "
            f"{100 * statistics.median(to_own):.0f}%, {100 * best / max(own):.0f}% | "
            f"{100 * statistics.median(to_best):.0f}% |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
