"""The performance report: Markdown tables, the description of the limit, the plots, the files written.

``results.md`` holds the machine's peak and the models' FLOPs, the grid of cells (with rerankd's ratios
to each peer and each server's peak RSS), the scaling sweeps and the notes; ``results.json`` the same
cells raw; ``grid.png`` and ``scaling.png`` the plots, when matplotlib is installed (the ``bench`` extra).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from rerankd_support.bench.infinity import INFINITY_BATCH_SIZE
from rerankd_support.bench.measure import ARCHS, OURS, PEERS, SERVERS, PerfCell, Run
from rerankd_support.bench.peak import reference_peak
from rerankd_support.bench.tables import fmt_loads, fmt_ms, fmt_ratio, markdown_table

__all__ = ["grid_table", "peak_lines", "plot", "render_markdown", "sweep_table", "write_results"]


def _num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


GRID_COLUMNS = [
    ("model", False), ("docs", True), ("conc", True), ("server", False), ("req", True),
    ("pairs/s", True), ("real tok/s", True), ("padded tok/s", True), ("padding", True),
    ("p50 ms", True), ("p99 ms", True), ("GFLOP/s", True), ("% peak", True),
    ("peak RSS MiB", True), ("err", True), ("429", True), ("cut", True),
]  # fmt: skip
SWEEP_COLUMNS = [
    ("model", False), ("server", False), ("docs", True), ("doc tokens", True), ("pair tokens", True),
    ("req", True), ("p50 ms", True), ("p99 ms", True), ("pairs/s", True), ("real tok/s", True),
    ("padding", True), ("GFLOP/s", True), ("% peak", True), ("cut", True),
]  # fmt: skip


def grid_table(cells: list[PerfCell]) -> str:
    rows = [
        [
            c.model, str(c.docs), str(c.concurrency), c.server, str(c.requests),
            _num(c.pairs_per_s, 1), _num(c.real_tokens_per_s), _num(c.padded_tokens_per_s),
            _pct(c.padding_waste), fmt_ms(c.p50_ms, c.p50_lower_bound), fmt_ms(c.p99_ms, c.p99_lower_bound),
            _num(c.gflops, 1), _pct(c.peak_fraction), _num(c.peak_rss_mib), str(c.errors),
            str(c.rejected_429), str(c.cut),
        ]
        for c in cells
    ]  # fmt: skip
    return markdown_table(GRID_COLUMNS, rows)


def sweep_table(cells: list[PerfCell]) -> str:
    rows = [
        [
            c.model, c.server, str(c.docs), str(c.doc_tokens) if c.doc_tokens else "Cranfield",
            _num(c.mean_pair_tokens), str(c.requests), fmt_ms(c.p50_ms, c.p50_lower_bound),
            fmt_ms(c.p99_ms, c.p99_lower_bound), _num(c.pairs_per_s, 1), _num(c.real_tokens_per_s),
            _pct(c.padding_waste), _num(c.gflops, 1), _pct(c.peak_fraction), str(c.cut),
        ]
        for c in cells
    ]  # fmt: skip
    return markdown_table(SWEEP_COLUMNS, rows)


def ratio_table(cells: list[PerfCell]) -> str:
    by_key = {(c.model, c.docs, c.concurrency, c.server): c for c in cells}
    peers = [peer for peer in PEERS if any(c.server == peer for c in cells)]
    if not peers or not any(c.server in OURS for c in cells):
        return ""
    columns = [("model", False), ("docs", True), ("conc", True), ("server", False)]
    for peer in peers:
        columns += [(f"pairs/s ÷ {peer}", True), (f"p99 ÷ {peer}", True)]
    rows = []
    for (model, docs, conc, server), ours in by_key.items():
        if server not in OURS:
            continue
        row = [model, str(docs), str(conc), server]
        for peer in peers:
            theirs = by_key.get((model, docs, conc, peer))
            if theirs is None:
                row += ["-", "-"]
                continue
            p99 = fmt_ratio(ours.p99_ms, theirs.p99_ms)
            if p99 != "-" and (ours.p99_lower_bound or theirs.p99_lower_bound):
                p99 = f"~{p99}"
            row += [fmt_ratio(ours.pairs_per_s, theirs.pairs_per_s), p99]
        rows.append(row)
    return markdown_table(columns, rows)


def rss_table(cells: list[PerfCell]) -> str:
    peaks: dict[tuple[str, str], float] = {}
    for c in cells:
        if c.peak_rss_mib is not None:
            key = (c.model, c.server)
            peaks[key] = max(peaks.get(key, 0.0), c.peak_rss_mib)
    rows = [[model, server, f"{mib:,.0f}"] for (model, server), mib in peaks.items()]
    return markdown_table([("model", False), ("server", False), ("peak RSS MiB", True)], rows)


def peak_lines(peak: dict[str, Any], cpu: dict[str, Any]) -> list[str]:
    flags = cpu["flags"]
    native_bf16 = flags.get("avx512_bf16") or flags.get("amx_bf16")
    listed = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in flags.items())
    if peak.get("device"):
        lines = [f"- GPU: {peak['cpu_capability']} ({peak['device']}), torch {peak.get('torch')}."]
    else:
        lines = [
            f"- CPU: {cpu['model']}; {listed}; torch {peak.get('torch')} ({peak.get('cpu_capability')} "
            f"kernels), {peak.get('threads')} threads.",
        ]
    reference, _ = reference_peak(peak)
    lines.append(f"- Percentages are of the {reference} matmul peak: the precision rerankd computes in here.")
    for dtype in ("fp32", "bf16", "fp16"):
        if dtype in peak:
            cases = ", ".join(f"{name} {value:,.1f}" for name, value in peak[dtype]["cases"].items())
            lines.append(f"- {dtype} matmul peak: **{peak[dtype]['gflops']:,.1f} GFLOP/s** ({cases}).")
    if not peak.get("device") and not native_bf16 and "bf16" in peak and "fp32" in peak:
        slower = peak["fp32"]["gflops"] / max(peak["bf16"]["gflops"], 1e-9)
        lines.append(
            f"- bf16 is not native on this CPU (no AVX512-BF16 / AMX): it is emulated and {slower:.0f}x "
            "slower than fp32, so every server runs fp32 and percentages are of the fp32 peak."
        )
    return lines


def render_markdown(run: Run, meta: dict[str, Any]) -> str:
    env = meta["environment"]
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    grid = [c for c in run.cells if c.phase == "grid"]
    sweeps = [c for c in run.cells if c.phase != "grid"]
    parts = [
        "# rerankd performance: vs naive server and Infinity, as a fraction of the machine's limit",
        "",
        f"{env['date']}; {env['cpus']} CPUs, {env['platform']}; {versions}.",
        f"Whole run {meta.get('wall_s', 0) / 60:.1f} min; load average (1, 5, 15 min) before "
        f"{fmt_loads(env['load_average'])}, after {fmt_loads(meta.get('load_average_after'))}.",
        "",
        "## The limit",
        "",
        *peak_lines(run.peak, meta["cpu"]),
    ]
    for model, info in meta["models"].items():
        parts.append(
            f"- {model}: {info['layers']} layers, hidden {info['hidden']}, FFN {info['intermediate']}: "
            f"{info['linear_mflops_per_token']:.1f} MFLOP per token plus 4·L·{info['layers']}·"
            f"{info['hidden']} per token for attention over L tokens."
        )
    infinity = meta.get("infinity")
    if infinity:
        if infinity.get("error"):
            parts.append(f"- Infinity: not run: {infinity['error']}.")
        else:
            built = f"built in {infinity['build_s']:.0f}s this run" if infinity.get("build_s") else "reused"
            parts.append(
                f"- Infinity {infinity['version']} ({infinity['venv']}, {built}): engines torch "
                "(BetterTransformer) and optimum (ONNX Runtime, graph-optimised), batch size "
                f"{INFINITY_BATCH_SIZE}, fp32, no result cache."
            )
    args = meta["args"]
    bert = ""
    if "bert-base" in args["models"]:
        bert = f" (bert-base: {max(args['duration'], args['bert_base_duration']):g}s)"
    parts += [
        "",
        "## Servers under load",
        "",
        f"Cranfield requests; closed loop, {args['duration']:g}s of sending per cell{bert}, then the "
        f"drain; max_length {args['max_length']}; random-weight models of the real architectures.",
        "",
        grid_table(grid) if grid else "(no cells measured)",
    ]
    ratios = ratio_table(grid)
    if ratios:
        legend = "rerankd ÷ peer, same model, docs and concurrency (pairs/s: higher is better for rerankd"
        parts += ["", f"{legend}; p99: lower is better):", "", ratios]
    if run.cells:
        parts += [
            "",
            "Peak RSS of each server process (VmHWM, whole process tree):",
            "",
            rss_table(run.cells),
        ]
    if (run.args.out / "grid.png").is_file():
        parts += ["", "![throughput, p99 latency and share of the peak by concurrency](grid.png)"]
    if sweeps:
        parts += [
            "",
            "## Scaling (concurrency 1)",
            "",
            "Documents per request on Cranfield documents, then documents cut to a fixed number of "
            "tokens (pair tokens: the mean (query, document) input, special tokens included, capped at "
            "max_length).",
            "",
            sweep_table(sweeps),
        ]
        if (run.args.out / "scaling.png").is_file():
            parts += [
                "",
                "![latency and throughput vs documents per request and document length](scaling.png)",
            ]
    notes = list(run.notes)
    if run.skipped:
        notes.append(f"{run.skipped} cells skipped: the --budget-min of {args['budget_min']:g} min ran out.")
    if notes:
        parts += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    parts += [
        "",
        "`>=`: a lower bound (requests still running when the window closed may be slower); `~`: a ratio "
        "involving one; `n/a`: not knowable for that server. Columns: benchmarks/README.md.",
    ]
    return "\n".join(parts) + "\n"


def plot(run: Run) -> list[str]:
    """grid.png and scaling.png in --out; returns a note when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["plots skipped: matplotlib is not installed (pip install -e '.[bench]')"]
    out = run.args.out
    grid = [c for c in run.cells if c.phase == "grid"]
    panels = sorted({(c.model, c.docs) for c in grid}, key=lambda key: (ARCHS.index(key[0]), key[1]))
    if panels:
        fig, axes = plt.subplots(3, len(panels), figsize=(4.2 * len(panels), 10), squeeze=False)
        for column, (model, docs) in enumerate(panels):
            for server in SERVERS:
                mine = sorted(
                    (c for c in grid if (c.model, c.docs, c.server) == (model, docs, server)),
                    key=lambda c: c.concurrency,
                )
                if not mine:
                    continue
                conc = [c.concurrency for c in mine]
                axes[0][column].plot(conc, [c.pairs_per_s for c in mine], marker="o", label=server)
                p99 = [c.p99_ms / 1000 if c.p99_ms else math.nan for c in mine]
                axes[1][column].plot(conc, p99, marker="o", label=server)
                share = [100 * (c.peak_fraction or 0.0) for c in mine]
                axes[2][column].plot(conc, share, marker="o", label=server)
            axes[0][column].set_title(f"{model}, {docs} docs/request")
            axes[0][column].set_ylabel("pairs/s")
            axes[1][column].set_ylabel("p99 latency s")
            axes[1][column].set_yscale("log")
            axes[2][column].set_ylabel(f"useful GFLOP/s, % of {reference_peak(run.peak)[0]} matmul peak")
            ticks = sorted({c.concurrency for c in grid if (c.model, c.docs) == (model, docs)})
            for row in (0, 1, 2):
                axes[row][column].set_xscale("log", base=2)
                _plain_ticks(axes[row][column], ticks)
                axes[row][column].set_xlabel("concurrent clients")
                axes[row][column].grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "grid.png", dpi=110)
        plt.close(fig)
    sweeps = [c for c in run.cells if c.phase != "grid"]
    if sweeps:
        fig, axes = plt.subplots(2, 2, figsize=(10, 8), squeeze=False)
        for server in SERVERS:
            by_docs = sorted((c for c in sweeps if c.phase == "docs-sweep" and c.server == server),
                             key=lambda c: c.docs)  # fmt: skip
            by_len = sorted((c for c in sweeps if c.phase == "length-sweep" and c.server == server),
                            key=lambda c: c.doc_tokens or 0)  # fmt: skip
            if by_docs:
                x = [c.docs for c in by_docs]
                axes[0][0].plot(x, [(c.p50_ms or math.nan) / 1000 for c in by_docs], marker="o", label=server)
                axes[0][1].plot(x, [c.pairs_per_s for c in by_docs], marker="o", label=server)
            if by_len:
                x = [c.doc_tokens or 0 for c in by_len]
                axes[1][0].plot(x, [(c.p50_ms or math.nan) / 1000 for c in by_len], marker="o", label=server)
                axes[1][1].plot(x, [c.gflops for c in by_len], marker="o", label=f"{server} GFLOP/s")
        reference, peak = reference_peak(run.peak)
        if peak:
            axes[1][1].axhline(peak, color="grey", linestyle="--", label=f"{reference} matmul peak")
        titles = [
            ("p50 latency s vs documents per request", "documents per request", "log"),
            ("pairs/s vs documents per request", "documents per request", "linear"),
            (
                f"p50 latency s vs document tokens ({run.args.scaling_length_docs} docs)",
                "document tokens",
                "log",
            ),
            ("useful GFLOP/s vs document tokens", "document tokens", "linear"),
        ]
        doc_ticks = sorted({c.docs for c in sweeps if c.phase == "docs-sweep"})
        length_ticks = sorted({c.doc_tokens or 0 for c in sweeps if c.phase == "length-sweep"})
        for ax, (title, xlabel, yscale) in zip(axes.flat, titles, strict=True):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel(xlabel)
            ax.set_xscale("log", base=2 if "tokens" in xlabel else 10)
            _plain_ticks(ax, length_ticks if "tokens" in xlabel else doc_ticks)
            ax.set_yscale(yscale)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "scaling.png", dpi=110)
        plt.close(fig)
    return []


def _plain_ticks(ax: Any, values: list[int]) -> None:
    """The measured x values as plain numbers on a log axis."""
    from matplotlib.ticker import NullFormatter, NullLocator

    if values:
        ax.set_xticks(values, [str(value) for value in values])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())


def write_results(run: Run, meta: dict[str, Any]) -> str:
    out = run.args.out
    out.mkdir(parents=True, exist_ok=True)
    run.notes += plot(run)
    markdown = render_markdown(run, meta)
    (out / "results.md").write_text(markdown, encoding="utf-8")
    raw = {"meta": meta, "notes": run.notes, "skipped": run.skipped, "cells": [asdict(c) for c in run.cells]}
    (out / "results.json").write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    return markdown
