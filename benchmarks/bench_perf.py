"""Performance report: rerankd against the naive server and Infinity, as a fraction of the machine's limit.

One command measures everything and writes ``results.md``, ``results.json`` and the plots into ``--out``::

    .venv/bin/python benchmarks/bench_perf.py --out benchmarks/results/perf

In one run it

1. measures this machine's matmul peak with torch, fp32 and bf16 (the limit the results are a
   fraction of);
2. generates the random-weight cross-encoders (``servers.ensure_model``), builds the Infinity
   environment if it is missing (``infinity-requirements.txt``, once) and exports the ONNX copy that
   Infinity's optimum engine needs (``infinity_onnx.py``);
3. starts rerankd, the naive FastAPI + CrossEncoder server and Infinity (torch and optimum engines) on
   127.0.0.1 and drives closed-loop HTTP load built from Cranfield at each documents-per-request x
   concurrency, alternating servers per cell (the cell machinery is ``bench_server.py``'s too);
4. sweeps documents per request (10 -> 1000) and document length (64 -> 512 tokens) at concurrency 1
   (rerankd by default, ``--scaling-servers`` for more);
5. reports pairs/s, real and padded tokens/s, padding waste, p50/p99 latency, achieved GFLOP/s and its
   share of the measured fp32 peak, each server's peak RSS, and rerankd's ratios to each peer.

Everything is bounded in time (per-cell windows and a whole-run ``--budget-min``); servers are always
stopped, also on errors and Ctrl-C, and whatever was measured until then is still written.
This file is the command line; the work is done by ``rerankd_support.bench``: ``peak`` (1),
``servers``, ``infinity`` and ``workloads`` (2), ``load`` and ``measure`` (3, 4), ``report`` (5).
See benchmarks/README.md for the columns.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rerankd_support import cranfield
from rerankd_support.bench import servers
from rerankd_support.bench.infinity import INFINITY_VENV, InfinityEnv, ensure_infinity
from rerankd_support.bench.measure import ARCHS, SERVER_ALIASES, SERVERS, Run, plan_minutes, run_model
from rerankd_support.bench.options import add_server_arguments, check_device, csv_list
from rerankd_support.bench.peak import cpu_description, measure_peak
from rerankd_support.bench.report import write_results
from rerankd_support.bench.tables import environment, load_average
from rerankd_support.bench.workloads import Arch

BENCH_DIR = Path(__file__).resolve().parent

DEFAULTS = {
    # option: (full run, --quick)
    "models": (list(servers.ARCHS), ["minilm-l6"]),
    "docs": ([20, 50, 100], [20]),
    "concurrency": ([1, 8, 32], [1, 8]),
    "duration": (20.0, 10.0),
    "bert_base_duration": (45.0, 20.0),
    "scaling_docs": ([10, 30, 100, 300, 1000], [10, 100]),
    "scaling_lengths": ([64, 128, 256, 512], [64, 256]),
    "scaling_duration": (5.0, 3.0),
}


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    def full(name: str) -> str:
        value = DEFAULTS[name][0]
        return ",".join(map(str, value)) if isinstance(value, list) else f"{value:g}"

    def quick(name: str) -> str:
        value = DEFAULTS[name][1]
        return ",".join(map(str, value)) if isinstance(value, list) else f"{value:g}"

    def default(name: str) -> str:
        return f"[default: {full(name)}; --quick: {quick(name)}]"

    parser = argparse.ArgumentParser(
        description="rerankd vs naive server vs Infinity over HTTP on 127.0.0.1, against the machine's "
        "matmul peak; writes results.md, results.json and plots.",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "perf", help="where results go")
    parser.add_argument("--quick", action="store_true", help="smoke run: small grid, short windows")
    parser.add_argument(
        "--servers",
        type=csv_list(str),
        default=list(SERVERS),
        help=f"subset of {','.join(SERVERS)} ('infinity' = both engines) [default: all]",
    )
    parser.add_argument(
        "--models", type=csv_list(str), help=f"subset of {','.join(ARCHS)} {default('models')}"
    )
    parser.add_argument("--docs", type=csv_list(int), help=f"documents per request {default('docs')}")
    parser.add_argument(
        "--concurrency", type=csv_list(int), help=f"clients per cell {default('concurrency')}"
    )
    parser.add_argument("--duration", type=float, help=f"seconds of sending per cell {default('duration')}")
    parser.add_argument(
        "--drain",
        type=float,
        help="seconds stragglers get after that [default: duration/2 x max(1, docs/20), so that a request "
        "sent at the end of the window can finish at concurrency 1]",
    )
    parser.add_argument(
        "--bert-base-duration",
        type=float,
        help=f"--duration of bert-base cells (a 20-doc request takes ~5 s) {default('bert_base_duration')}",
    )
    parser.add_argument(
        "--bert-base-max-concurrency",
        type=int,
        default=8,
        help="skip bert-base cells above this concurrency (0: no cap) [default: 8]",
    )
    parser.add_argument(
        "--bert-base-docs",
        type=csv_list(int),
        default=[20],
        help="bert-base cells only at these --docs values (empty: all) [default: 20]",
    )
    parser.add_argument(
        "--scaling-model", default="minilm-l6", help="model of the scaling sweeps [default: minilm-l6]"
    )
    parser.add_argument(
        "--scaling-servers",
        type=csv_list(str),
        default=["rerankd"],
        help="servers swept (empty string: no sweeps) [default: rerankd]",
    )
    parser.add_argument(
        "--scaling-docs", type=csv_list(int), help=f"documents per request swept {default('scaling_docs')}"
    )
    parser.add_argument(
        "--scaling-lengths",
        type=csv_list(int),
        help=f"document lengths (tokens) swept {default('scaling_lengths')}",
    )
    parser.add_argument(
        "--scaling-length-docs", type=int, default=20, help="documents per request of the length sweep [20]"
    )
    parser.add_argument(
        "--scaling-duration",
        type=float,
        help=f"seconds of sending per sweep point (one request at least) {default('scaling_duration')}",
    )
    parser.add_argument(
        "--scaling-drain",
        type=float,
        default=120.0,
        help="seconds a sweep point's last request may take beyond that [default: 120]",
    )
    parser.add_argument(
        "--budget-min",
        type=float,
        default=60.0,
        help="cells not started after this many minutes of measuring are skipped [default: 60]",
    )
    parser.add_argument("--warmup-requests", type=int, default=1, help="unmeasured requests after each start")
    add_server_arguments(parser)
    parser.add_argument("--infinity-venv", type=Path, default=INFINITY_VENV, help="Infinity's environment")
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="never build the Infinity environment; skip Infinity if absent",
    )
    cranfield.add_argument(parser)
    args = parser.parse_args(argv)
    for name, (full_value, quick_value) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick_value if args.quick else full_value)
    args.servers = _expand(args.servers)
    args.scaling_servers = _expand(args.scaling_servers)
    _check_args(parser, args)
    return args


def _expand(servers: list[str]) -> list[str]:
    expanded: list[str] = []
    for name in servers:
        for one in SERVER_ALIASES.get(name, (name,)):
            if one not in expanded:
                expanded.append(one)
    return expanded


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if unknown := sorted(set(args.models) - set(ARCHS)):
        parser.error(f"unknown --models {unknown}; choose from {list(ARCHS)}")
    check_device(parser, args)
    if unknown := sorted(set(args.servers + args.scaling_servers) - set(SERVERS)):
        parser.error(f"unknown servers {unknown}; choose from {list(SERVERS)} or 'infinity'")
    if args.duration <= 0 or args.scaling_duration <= 0 or (args.drain is not None and args.drain < 0):
        parser.error("durations must be > 0 and --drain >= 0")
    numbers = args.docs + args.concurrency + args.scaling_docs + args.scaling_lengths
    if not args.docs or not args.concurrency or min(numbers, default=1) < 1:
        parser.error("--docs, --concurrency and the sweeps need positive integers")


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = cranfield.load(args.cranfield)
    workdir = args.out / "logs"
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"at most {plan_minutes(args):.1f} min of load (sweeps: plus their longest requests) and start-ups;"
        f" cells not started within {args.budget_min:g} min are skipped",
        flush=True,
    )
    meta: dict[str, Any] = {
        "environment": environment(),
        "cpu": cpu_description(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "models": {},
    }
    print("measuring the matmul peak ...", flush=True)
    peak = measure_peak(device=args.device)
    meta["peak"] = peak
    print(
        f"  fp32 {peak['fp32']['gflops']:.1f} GFLOP/s, bf16 {peak['bf16']['gflops']:.1f} GFLOP/s "
        f"(results are a share of the {peak['reference']} peak)",
        flush=True,
    )
    infinity: InfinityEnv | None = None
    if any(kind.startswith("infinity") for kind in args.servers + args.scaling_servers):
        infinity = ensure_infinity(args.infinity_venv, not args.no_build, workdir / "infinity-venv.log")
        meta["infinity"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(infinity).items()}
        if infinity.error:
            print(f"Infinity unavailable: {infinity.error}", flush=True)
    began = time.monotonic()
    run = Run(args, peak, deadline=began + args.budget_min * 60)
    try:
        for model in args.models:
            model_dir = servers.ensure_model(model, args.cache, args.seed)
            arch = Arch.from_folder(model_dir)
            meta["models"][model] = {
                **asdict(arch),
                "linear_mflops_per_token": arch.linear_flops_per_token / 1e6,
            }
            run_model(run, model, data, workdir, infinity)
    finally:
        # Whatever was measured before an error or Ctrl-C is still written out.
        meta["wall_s"] = round(time.monotonic() - began, 1)
        meta["load_average_after"] = load_average()
        markdown = write_results(run, meta)
        print()
        print(markdown)
        print(f"wrote {args.out / 'results.md'}, {args.out / 'results.json'} and the plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
