"""Precision on this CPU: speed and fidelity of bf16 and int8 against fp32, on the same inputs.

For each model and precision it scores the same Cranfield requests through rerankd's own backend
(prepare + packed forward passes, as the server does) and reports pairs/s, the speed-up over fp32,
and fidelity against fp32: max |Δ| of the scores, mean Spearman correlation per query, and mean
top-10 agreement. Models: the real all-MiniLM-L6-v2 bi-encoder (real weights: fidelity that means
something) and a generated MiniLM-L6 cross-encoder (real architecture, random weights: speed).

    .venv/bin/python benchmarks/bench_precision.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rerankd_support import cranfield
from rerankd_support.models import bundled_minilm_path, make_cross_encoder
from rerankd_support.paths import BENCH_CACHE
from scipy.stats import spearmanr

from rerankd.backends.specs import TransformerSpec
from rerankd.backends.torch_runtime import cpu_flags, native_bf16
from rerankd.batching import pack
from rerankd.kinds import load_model
from rerankd.types import ScoreOptions


def score_all(backend: Any, requests: list[dict[str, Any]], budget: int) -> tuple[list[list[float]], float]:
    began = time.perf_counter()
    results = []
    for request in requests:
        prepared = backend.prepare(request["query"], request["documents"], ScoreOptions())
        outputs: list[Any] = [None] * len(prepared.inputs)
        lengths = [len(item) for item in prepared.inputs]
        for batch in pack(lengths, budget, 256):
            for index, value in zip(batch, backend.forward([prepared.inputs[i] for i in batch]), strict=True):
                outputs[index] = value
        results.append(prepared.combine(outputs))
    return results, time.perf_counter() - began


def fidelity(reference: list[list[float]], other: list[list[float]]) -> dict[str, float]:
    deltas = [
        abs(a - b) for ref, oth in zip(reference, other, strict=True) for a, b in zip(ref, oth, strict=True)
    ]
    rhos, overlaps = [], []
    for ref, oth in zip(reference, other, strict=True):
        rhos.append(float(spearmanr(ref, oth).statistic))
        top_ref = set(sorted(range(len(ref)), key=lambda i: -ref[i])[:10])
        top_oth = set(sorted(range(len(oth)), key=lambda i: -oth[i])[:10])
        overlaps.append(len(top_ref & top_oth) / 10)
    return {
        "max_abs_delta": max(deltas),
        "spearman": statistics.mean(rhos),
        "top10_agreement": statistics.mean(overlaps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--requests", type=int, default=8, help="Cranfield queries (50 documents each)")
    parser.add_argument("--precisions", default="fp32,bf16,int8", help="fp32 first: the reference")
    parser.add_argument("--budget", type=int, default=8192, help="padded tokens per forward pass")
    parser.add_argument("--cache", type=Path, default=BENCH_CACHE)
    cranfield.add_argument(parser)
    args = parser.parse_args()

    requests = cranfield.make_requests(50, args.requests, data=cranfield.load(args.cranfield))
    minilm = bundled_minilm_path()
    generated = args.cache / "minilm-l6-seed0"
    if not (generated / "config.json").is_file():
        make_cross_encoder(generated, arch="minilm-l6", tokenizer_from=minilm)
    models = [
        TransformerSpec(
            name="all-minilm-l6-v2.real.bi-encoder", kind="bi-encoder", source=str(minilm), device="cpu"
        ),
        TransformerSpec(
            name="minilm-l6.generated.cross-encoder",
            kind="cross-encoder",
            source=str(generated),
            device="cpu",
            max_length=512,
        ),
    ]
    import torch

    print(
        f"CPU flags: avx512f={'avx512f' in cpu_flags()} amx_bf16={'amx_bf16' in cpu_flags()}; "
        f"native bf16: {native_bf16(torch.device('cpu'))}; torch threads: {torch.get_num_threads()}"
    )
    rows: list[dict[str, Any]] = []
    for base in models:
        reference: list[list[float]] | None = None
        fp32_rate = 0.0
        for precision in args.precisions.split(","):
            spec = base.model_copy(update={"dtype": precision})
            backend = load_model(spec)
            score_all(backend, requests[:1], args.budget)  # warm-up
            scores, seconds = score_all(backend, requests, args.budget)
            pairs = sum(len(r["documents"]) for r in requests)
            rate = pairs / seconds
            row: dict[str, Any] = {"model": base.name, "precision": precision, "pairs_per_s": rate}
            if precision == "fp32":
                reference, fp32_rate = scores, rate
            if reference is not None:
                row.update(fidelity(reference, scores), speedup=rate / fp32_rate if fp32_rate else None)
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = [
        "| model | precision | pairs/s | × fp32 | max abs Δ | Spearman | top-10 agreement |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        speedup, delta = row.get("speedup") or 0, row.get("max_abs_delta", 0)
        rho, top10 = row.get("spearman", 1), row.get("top10_agreement", 1)
        lines.append(
            f"| {row['model']} | {row['precision']} | {row['pairs_per_s']:.1f} | {speedup:.2f} | "
            f"{delta:.2e} | {rho:.4f} | {top10:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision.md").write_text(table + "\n", encoding="utf-8")
    (args.out / "precision.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
