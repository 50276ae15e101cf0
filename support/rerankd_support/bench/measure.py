"""The performance run: servers started per model, cells measured on them, sweeps, the time budget.

A :class:`PerfCell` extends the load's :class:`~rerankd_support.bench.load.Cell` with what the report
shows beyond throughput and latency: real and padded tokens per second (rerankd's own counter, or the
naive server's known padding), useful GFLOP/s and its share of the peak, and each server's peak RSS.
:func:`run_model` starts every server for a model, measures the grid with the servers alternating
within each cell, then the scaling sweeps (documents per request, document length) at concurrency 1;
a :class:`Run` collects the cells and notes and skips cells once ``--budget-min`` has run out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rerankd_support import cranfield
from rerankd_support.bench import servers as bench_servers
from rerankd_support.bench.infinity import InfinityEnv, ensure_onnx, infinity_server, settle_infinity
from rerankd_support.bench.load import Cell, drive, summarize
from rerankd_support.bench.peak import reference_peak
from rerankd_support.bench.tables import fmt_ms
from rerankd_support.bench.workloads import (
    Arch,
    Workload,
    cranfield_workload,
    fixed_length_workload,
    token_stream,
)
from rerankd_support.harness import Server

__all__ = [
    "ARCHS",
    "OURS",
    "PEERS",
    "SERVERS",
    "SERVER_ALIASES",
    "PerfCell",
    "Run",
    "cell_window",
    "grid_for",
    "measure_cell",
    "plan_minutes",
    "run_model",
]

SERVERS = ("rerankd", "naive", "infinity-torch", "infinity-optimum")
OURS = SERVERS[:1]
PEERS = SERVERS[1:]
SERVER_ALIASES = {"infinity": ("infinity-torch", "infinity-optimum")}
ARCHS = (*bench_servers.ARCHS, "xlm-roberta-large")  # the last for GPUs (bge-reranker-v2-m3 class): --models


def forward_tokens(server: Server) -> dict[str, float] | None:
    """rerankd's ``rerankd_forward_tokens_total`` by kind (real, padded), summed over models."""
    try:
        text = httpx.get(f"{server.url}/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return None
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("rerankd_forward_tokens_total{"):
            continue
        labels, _, value = line.rpartition(" ")
        for kind in ("real", "padded"):
            if f'kind="{kind}"' in labels:
                totals[kind] = totals.get(kind, 0.0) + float(value)
    return totals


def tree_peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a process plus its descendants, in MiB, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text(encoding="utf-8")
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent and child not in tree]
        tree.update(children)
        frontier.extend(children)
    total_kib, found = 0, False
    for member in tree:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{member}/status").read_text(encoding="utf-8").splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
                    found = True
    return total_kib / 1024 if found else None


@dataclass
class PerfCell(Cell):
    phase: str = "grid"  # grid | docs-sweep | length-sweep
    doc_tokens: int | None = None  # length sweep: tokens per document
    mean_pair_tokens: float = 0.0
    real_tokens_per_s: float = 0.0
    padded_tokens_per_s: float | None = None  # None: not knowable for this server
    padding_waste: float | None = None  # share of computed tokens that were padding
    server_real_tokens_per_s: float | None = None  # rerankd: from its own counter, cut requests included
    gflops: float = 0.0
    peak_fraction: float | None = None
    peak_rss_mib: float | None = None


@dataclass
class Run:
    args: argparse.Namespace
    peak: dict[str, Any]
    deadline: float
    cells: list[PerfCell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: int = 0

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline


def measure_cell(
    run: Run,
    server: Server,
    work: Workload,
    *,
    docs: int,
    concurrency: int,
    duration: float,
    drain: float,
    phase: str = "grid",
    doc_tokens: int | None = None,
) -> PerfCell | None:
    if run.out_of_time():
        run.skipped += 1
        return None
    cell = PerfCell(server.model, server.kind, docs, concurrency, duration, drain, phase=phase)
    cell.doc_tokens, cell.mean_pair_tokens = doc_tokens, round(work.mean_pair_tokens, 1)
    before = forward_tokens(server) if server.kind in OURS else None
    samples, start, finish = asyncio.run(drive(server.url, work.payloads, concurrency, duration, drain))
    after = forward_tokens(server) if server.kind in OURS else None
    cell.peak_rss_mib = tree_peak_rss_mib(server.proc.pid) if server.proc else None
    summarize(cell, samples, start, finish)
    answered = [work.stats[s.payload] for s in samples if s.end is not None and s.status == 200]
    elapsed = cell.elapsed_s
    cell.real_tokens_per_s = sum(s.forward_tokens for s in answered) / elapsed
    cell.gflops = sum(s.flops for s in answered) / elapsed / 1e9
    _, peak = reference_peak(run.peak)
    cell.peak_fraction = cell.gflops / peak if peak else None
    if before is not None and after is not None:
        real = after.get("real", 0.0) - before.get("real", 0.0)
        padded = after.get("padded", 0.0) - before.get("padded", 0.0)
        cell.server_real_tokens_per_s = real / elapsed
        cell.padded_tokens_per_s = padded / elapsed
        cell.padding_waste = 1 - real / padded if padded else None
    elif server.kind == "naive":
        padded = sum(s.naive_padded for s in answered)
        cell.padded_tokens_per_s = padded / elapsed
        real = sum(s.forward_tokens for s in answered)
        cell.padding_waste = 1 - real / padded if padded else None
    p50, p99 = fmt_ms(cell.p50_ms, cell.p50_lower_bound), fmt_ms(cell.p99_ms, cell.p99_lower_bound)
    what = f"len={doc_tokens}" if doc_tokens else f"docs={docs}"
    print(
        f"  [{phase}] {cell.model} {what} conc={concurrency} {cell.server}: {cell.requests} req, "
        f"{cell.pairs_per_s:.1f} pairs/s, {cell.gflops:.1f} GFLOP/s, p50 {p50} ms, p99 {p99} ms, "
        f"errors {cell.errors}, 429 {cell.rejected_429}, cut {cell.cut}",
        flush=True,
    )
    before_restarts = server.restarts
    if server.kind.startswith("infinity"):
        settle_infinity(server, run.args.settle_timeout)
    else:
        bench_servers.settle(server, run.args.settle_timeout)
    cell.restarts_after = server.restarts - before_restarts
    run.cells.append(cell)
    return cell


def grid_for(args: argparse.Namespace, model: str) -> list[tuple[int, int]]:
    docs = args.docs
    if model == "bert-base" and args.bert_base_docs:
        docs = [d for d in docs if d in args.bert_base_docs]
    cap = args.bert_base_max_concurrency if model == "bert-base" else 0
    return [(d, c) for d in docs for c in args.concurrency if not cap or c <= cap]


def cell_window(args: argparse.Namespace, model: str, docs: int) -> tuple[float, float]:
    """Seconds of sending and of drain for one grid cell; the drain grows with the request's size."""
    duration = max(args.duration, args.bert_base_duration) if model == "bert-base" else args.duration
    return duration, args.drain if args.drain is not None else duration / 2 * max(1.0, docs / 20)


def start_servers(
    run: Run,
    kinds: Iterable[str],
    model: str,
    model_dir: Path,
    workdir: Path,
    infinity: InfinityEnv | None,
    warmup: list[bytes],
    servers: dict[str, Server],
) -> None:
    """Start each server; one that cannot start is noted and left out, the others go on."""
    for kind in kinds:
        print(f"starting {kind} with {model} ...", flush=True)
        try:
            if kind in OURS:
                # A 1000-document request takes MiniLM-L6 about a minute here: past rerankd's default
                # deadline.
                server = bench_servers.rerankd_for(run.args, model, model_dir, workdir, request_timeout=600.0)
            elif kind == "naive":
                server = bench_servers.naive_for(run.args, model, model_dir, workdir)
            else:
                if infinity is None or infinity.error:
                    run.notes.append(f"{kind}: not run: {infinity.error if infinity else 'no environment'}")
                    continue
                engine = kind.removeprefix("infinity-")
                folder = model_dir
                if engine == "optimum":
                    folder = ensure_onnx(infinity, model_dir, workdir / "infinity-onnx-export.log")
                server = infinity_server(infinity, engine, model, folder, workdir, run.args.device)
            server.warmup = warmup
            # Registered before it starts, so the clean-up also stops one that fails to come up.
            servers[kind] = server
            began = time.monotonic()
            server.start()
            print(f"  ready in {time.monotonic() - began:.0f}s", flush=True)
        except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError, httpx.HTTPError) as error:
            # The first line: what happened and where the server's log is (the rest is the log's end).
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            run.notes.append(f"{kind} with {model}: could not start: {reason}")
            print(f"  {kind} failed: {reason}", flush=True)
            if kind in servers:
                servers.pop(kind).stop(grace=1.0)


def run_model(
    run: Run, model: str, data: cranfield.Cranfield, workdir: Path, infinity: InfinityEnv | None
) -> None:
    from transformers import AutoTokenizer

    args = run.args
    grid = grid_for(args, model)
    sweep = model == args.scaling_model and bool(args.scaling_servers)
    if not grid and not sweep:
        return
    model_dir = bench_servers.ensure_model(model, args.cache, args.seed)
    arch = Arch.from_folder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    grid_work = {
        d: cranfield_workload(model, d, data, tokenizer, arch, args) for d in sorted({d for d, _ in grid})
    }
    first = (
        grid_work[min(grid_work)] if grid_work else cranfield_workload(model, 10, data, tokenizer, arch, args)
    )
    warmup = [payload.body for payload in first.payloads[: args.warmup_requests]]
    kinds = list(args.servers) if grid else []
    kinds += [kind for kind in (args.scaling_servers if sweep else []) if kind not in kinds]
    servers: dict[str, Server] = {}
    try:
        start_servers(run, kinds, model, model_dir, workdir, infinity, warmup, servers)
        grid_servers = [servers[k] for k in args.servers if k in servers]
        for docs, concurrency in grid:
            duration, drain = cell_window(args, model, docs)
            # Servers alternate within each cell so that drift on the machine hits them all alike.
            for server in grid_servers:
                measure_cell(
                    run,
                    server,
                    grid_work[docs],
                    docs=docs,
                    concurrency=concurrency,
                    duration=duration,
                    drain=drain,
                )
        if sweep:
            sweepers = [servers[k] for k in args.scaling_servers if k in servers]
            run_sweeps(run, model, sweepers, data, tokenizer, arch)
    finally:
        for server in servers.values():
            server.stop()


def run_sweeps(
    run: Run,
    model: str,
    servers: list[Server],
    data: cranfield.Cranfield,
    tokenizer: Any,
    arch: Arch,
) -> None:
    args = run.args
    duration, drain = args.scaling_duration, args.scaling_drain
    print(f"sweeping documents per request {args.scaling_docs} ...", flush=True)
    for docs in args.scaling_docs:
        work = cranfield_workload(model, docs, data, tokenizer, arch, args)
        for server in servers:
            measure_cell(
                run,
                server,
                work,
                docs=docs,
                concurrency=1,
                duration=duration,
                drain=drain,
                phase="docs-sweep",
            )
    print(f"sweeping document length {args.scaling_lengths} tokens ...", flush=True)
    stream = token_stream(data, tokenizer)
    for length in args.scaling_lengths:
        work = fixed_length_workload(model, length, data, tokenizer, arch, args, stream)
        for server in servers:
            measure_cell(
                run,
                server,
                work,
                docs=args.scaling_length_docs,
                concurrency=1,
                duration=duration,
                drain=drain,
                phase="length-sweep",
                doc_tokens=length,
            )


def plan_minutes(args: argparse.Namespace) -> float:
    total = 0.0
    for model in args.models:
        for docs, _ in grid_for(args, model):
            total += len(args.servers) * sum(cell_window(args, model, docs))
    if args.scaling_model in args.models and args.scaling_servers:
        points = len(args.scaling_docs) + len(args.scaling_lengths)
        total += points * len(args.scaling_servers) * args.scaling_duration
    return total / 60
