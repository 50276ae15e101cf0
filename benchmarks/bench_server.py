"""End-to-end HTTP benchmark: rerankd against a naive CrossEncoder server, on Cranfield rerank requests.

One command generates the models, starts both servers on 127.0.0.1, drives closed-loop load and writes
the tables::

    python benchmarks/bench_server.py --out benchmarks/results --duration 15

For each model x docs-per-request x concurrency x server ("cell"), ``concurrency`` clients each send a
request, wait for the answer and send the next, for ``--duration`` seconds; then no new requests are
sent and the ones in flight get ``--drain`` more seconds to finish. Requests still running after that
are cancelled ("cut"): their elapsed time is a lower bound on their latency, so they stay in the latency
percentiles, and a percentile they may have pulled down is printed as ``>=X``. Throughput is what
finished divided by the time until the last answer (or until the drain ran out). Each server answers
``--warmup-requests`` unmeasured requests after it starts, and between cells the benchmark waits until
the server has no leftover work (or restarts it), so one cell's backlog never slows the next.

Models are random-weight copies of real architectures (``rerankd_support.models.make_cross_encoder``):
the scores are meaningless, the cost of computing them is real. The machinery (servers, load, statistics)
is ``rerankd_support.bench``'s, shared with ``bench_perf.py``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rerankd_support import cranfield
from rerankd_support.bench.load import Cell, Payload, build_payloads, drive, summarize
from rerankd_support.bench.options import add_server_arguments, check_device, csv_list
from rerankd_support.bench.servers import ARCHS, STARTERS, ensure_model, settle
from rerankd_support.bench.tables import (
    environment,
    fmt_loads,
    fmt_ms,
    fmt_ratio,
    load_average,
    markdown_table,
)
from rerankd_support.harness import Server

BENCH_DIR = Path(__file__).resolve().parent
SERVERS = ("rerankd", "naive")


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark rerankd against a naive CrossEncoder server over HTTP on 127.0.0.1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="where results go")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of sending per cell")
    parser.add_argument(
        "--drain",
        type=float,
        help="seconds in flight requests get to finish after that [default: duration/2]",
    )
    parser.add_argument(
        "--warmup-requests", type=int, default=1, help="unmeasured requests after each server (re)start"
    )
    parser.add_argument(
        "--bert-base-duration",
        type=float,
        default=30.0,
        help="--duration for bert-base cells (never less than --duration): one 20-document request takes "
        "BERT-base 10-30s on a 2-core CPU, so a short window would finish almost nothing",
    )
    parser.add_argument(
        "--bert-base-max-concurrency",
        type=int,
        default=8,
        help="skip bert-base cells above this concurrency (0: no cap); on a small CPU they only queue",
    )
    parser.add_argument(
        "--models", type=csv_list(str), default=list(ARCHS), help=f"subset of {','.join(ARCHS)}"
    )
    parser.add_argument("--servers", type=csv_list(str), default=list(SERVERS), help="rerankd,naive or one")
    parser.add_argument("--concurrency", type=csv_list(int), default=[1, 8, 32], help="clients per cell")
    parser.add_argument(
        "--docs", type=csv_list(int), default=[20], help="documents per request, e.g. 20,50,100"
    )
    add_server_arguments(parser)
    cranfield.add_argument(parser)
    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_device(parser, args)
    if unknown := sorted(set(args.models) - set(ARCHS)):
        parser.error(f"unknown --models {unknown}; choose from {list(ARCHS)}")
    if unknown := sorted(set(args.servers) - set(SERVERS)):
        parser.error(f"unknown --servers {unknown}; choose from {list(SERVERS)}")
    if args.duration <= 0 or (args.drain is not None and args.drain < 0) or args.warmup_requests < 0:
        parser.error("--duration must be > 0, --drain and --warmup-requests >= 0")
    if not args.concurrency or min(args.concurrency) < 1 or not args.docs or min(args.docs) < 1:
        parser.error("--concurrency and --docs need positive integers")


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------

# (header, right-aligned?) for each column.
RESULT_COLUMNS = [
    ("model", False),
    ("docs", True),
    ("conc", True),
    ("server", False),
    ("requests", True),
    ("time s", True),
    ("pairs/s", True),
    ("tokens/s", True),
    ("p50 ms", True),
    ("p99 ms", True),
    ("errors", True),
    ("429", True),
    ("cut", True),
]
RATIO_COLUMNS = [
    ("model", False),
    ("docs", True),
    ("conc", True),
    ("pairs/s rerankd/naive (higher: better)", True),
    ("p99 rerankd/naive (lower: better)", True),
]


def results_table(cells: list[Cell]) -> str:
    rows = [
        [
            *(c.model, str(c.docs), str(c.concurrency), c.server, str(c.requests), f"{c.elapsed_s:.0f}"),
            *(f"{c.pairs_per_s:,.1f}", f"{c.tokens_per_s:,.0f}"),
            *(fmt_ms(c.p50_ms, c.p50_lower_bound), fmt_ms(c.p99_ms, c.p99_lower_bound)),
            *(str(c.errors), str(c.rejected_429), str(c.cut)),
        ]
        for c in cells
    ]
    return markdown_table(RESULT_COLUMNS, rows)


def ratio_table(cells: list[Cell]) -> str:
    by_key = {(c.model, c.docs, c.concurrency, c.server): c for c in cells}
    rows = []
    for (model, docs, conc, server), ours in by_key.items():
        theirs = by_key.get((model, docs, conc, "naive"))
        if server != "rerankd" or theirs is None:
            continue
        p99 = fmt_ratio(ours.p99_ms, theirs.p99_ms)
        if p99 != "-" and (ours.p99_lower_bound or theirs.p99_lower_bound):
            p99 = f"~{p99}"  # at least one side is a lower bound
        rows.append([model, str(docs), str(conc), fmt_ratio(ours.pairs_per_s, theirs.pairs_per_s), p99])
    return markdown_table(RATIO_COLUMNS, rows) if rows else ""


def render_markdown(cells: list[Cell], meta: dict[str, Any]) -> str:
    env, args = meta["environment"], meta["args"]
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    bert_base = ""
    if "bert-base" in args["models"]:
        bert_base = f" (bert-base: {max(args['duration'], args['bert_base_duration']):g}s)"
    parts = [
        "# rerankd vs naive CrossEncoder server",
        "",
        f"{env['date']}; {env['cpus']} CPUs, {env['platform']}; {versions}.",
        f"Cranfield requests (title + abstract); closed loop: {args['duration']:g}s of sending per cell"
        f"{bert_base}, then stragglers get the drain time; max_length {args['max_length']}; "
        "random-weight models of the real architectures.",
        f"Whole run {meta.get('wall_s', 0) / 60:.1f} min; load average (1, 5, 15 min) before "
        f"{fmt_loads(env['load_average'])}, after {fmt_loads(meta.get('load_average_after'))}.",
        "",
        results_table(cells),
    ]
    ratios = ratio_table(cells)
    if ratios:
        parts += ["", ratios]
    parts += [
        "",
        "`>=`: a lower bound (requests still running when the window closed may be slower); "
        "`~`: a ratio involving one. Columns are explained in benchmarks/README.md.",
    ]
    return "\n".join(parts) + "\n"


def write_results(out: Path, cells: list[Cell], meta: dict[str, Any]) -> str:
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(cells, meta)
    (out / "results.md").write_text(markdown, encoding="utf-8")
    raw = {"meta": meta, "cells": [asdict(cell) for cell in cells]}
    (out / "results.json").write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    return markdown


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def cell_duration(args: argparse.Namespace, model: str) -> float:
    return max(args.duration, args.bert_base_duration) if model == "bert-base" else args.duration


def cell_drain(args: argparse.Namespace, model: str) -> float:
    return args.drain if args.drain is not None else cell_duration(args, model) / 2


def cell_grid(args: argparse.Namespace, model: str) -> list[tuple[int, int]]:
    """The (docs, concurrency) pairs measured for ``model``."""
    cap = args.bert_base_max_concurrency if model == "bert-base" else 0
    return [(d, c) for d, c in itertools.product(args.docs, args.concurrency) if not cap or c <= cap]


def run_cell(
    server: Server, payloads: list[Payload], docs: int, concurrency: int, args: argparse.Namespace
) -> Cell:
    duration, drain = cell_duration(args, server.model), cell_drain(args, server.model)
    cell = Cell(server.model, server.kind, docs, concurrency, duration, drain)
    samples, start, finish = asyncio.run(drive(server.url, payloads, concurrency, duration, drain))
    summarize(cell, samples, start, finish)
    p50, p99 = fmt_ms(cell.p50_ms, cell.p50_lower_bound), fmt_ms(cell.p99_ms, cell.p99_lower_bound)
    print(
        f"  {cell.model} docs={docs} conc={concurrency} {cell.server}: {cell.requests} req in "
        f"{cell.elapsed_s:.0f}s, {cell.pairs_per_s:.1f} pairs/s, p50 {p50} ms, p99 {p99} ms, "
        f"errors {cell.errors}, 429 {cell.rejected_429}, cut {cell.cut}",
        flush=True,
    )
    before = server.restarts
    settle(server, args.settle_timeout)
    cell.restarts_after = server.restarts - before
    return cell


def run_model(
    args: argparse.Namespace, model: str, data: cranfield.Cranfield, workdir: Path, cells: list[Cell]
) -> None:
    grid = cell_grid(args, model)
    if len(grid) < len(args.docs) * len(args.concurrency):
        cap = args.bert_base_max_concurrency
        print(f"{model}: concurrency above {cap} skipped (see --bert-base-max-concurrency)")
    if not grid:
        return
    model_dir = ensure_model(model, args.cache, args.seed)
    payloads = {docs: build_payloads(model, model_dir, docs, data, args) for docs in args.docs}
    warmup = [payload.body for payload in payloads[args.docs[0]][: args.warmup_requests]]
    servers: dict[str, Server] = {}
    try:
        for kind in args.servers:
            print(f"starting {kind} with {model} ...", flush=True)
            # Registered before it starts, so the clean-up below also stops one that fails to come up.
            servers[kind] = STARTERS[kind](args, model, model_dir, workdir)
            servers[kind].warmup = warmup
            servers[kind].start()
        # Servers alternate within each (docs, concurrency) so slow drift on the machine hits both alike.
        for docs, concurrency in grid:
            for server in servers.values():
                cells.append(run_cell(server, payloads[docs], docs, concurrency, args))
    finally:
        for server in servers.values():
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = cranfield.load(args.cranfield)
    grids = {model: cell_grid(args, model) for model in args.models}
    n_cells = sum(len(grid) for grid in grids.values()) * len(args.servers)
    at_most = sum(
        len(grid) * len(args.servers) * (cell_duration(args, model) + cell_drain(args, model))
        for model, grid in grids.items()
    )
    print(
        f"{n_cells} cells, at most {at_most / 60:.1f} min of load, plus model generation, server start-up "
        "and restarts",
        flush=True,
    )
    workdir = args.out / "logs"
    workdir.mkdir(parents=True, exist_ok=True)
    cells: list[Cell] = []
    meta: dict[str, Any] = {
        "environment": environment(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    began = time.monotonic()
    try:
        for model in args.models:
            run_model(args, model, data, workdir, cells)
    finally:
        # Whatever was measured before an error or Ctrl-C is still written out.
        meta["wall_s"] = round(time.monotonic() - began, 1)
        meta["load_average_after"] = load_average()
        if cells:
            markdown = write_results(args.out, cells, meta)
            print()
            print(markdown)
            print(f"wrote {args.out / 'results.md'} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
