"""Precision on this CPU: speed and fidelity of bf16 autocast, bf16 weights and int8 against fp32.

For each model and precision it scores the same Cranfield requests through rerankd's own backend
(prepare + packed forward passes, as the server does) and reports pairs/s, the speed-up over fp32,
and fidelity against fp32: max |Δ| of the scores, mean Spearman correlation per query, and mean
top-10 agreement. Models: the real all-MiniLM-L6-v2 bi-encoder (real weights: fidelity that means
something) and a generated MiniLM-L6 cross-encoder (real architecture, random weights: speed).

    .venv/bin/python benchmarks/bench_precision.py --out benchmarks/results

``--fidelity`` measures instead what ranking quality each precision keeps, on the real all-MiniLM-L6-v2:
BM25 (bm25s over the 1400 abstracts, rerankd's own BM25 tokenizer) retrieves the top 100 per Cranfield
query, the model reranks them, and NDCG@10 is computed by ir-measures against Cranfield's graded
judgements (code 1, a complete answer, gains 4; code 4, of minimum interest, gains 1). Every distinct
model input is computed once per precision (a bi-encoder embeds a document the same whatever the query,
and BM25's candidates recur across queries: 225 × 100 pairs are ~2100 inputs, the queries and the
abstracts' windows), in rerankd's packed batches, the precisions interleaved batch by batch so that a busy
machine slows them alike. pairs/s is inputs embedded per second: a bi-encoder without a cache embeds one
document per pair (and the query once per request).

    .venv/bin/python benchmarks/bench_precision.py --fidelity --out benchmarks/results
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

from rerankd.backends.base import Encoded
from rerankd.backends.specs import TransformerSpec
from rerankd.backends.torch_runtime import cpu_flags, native_bf16, precision_label
from rerankd.evaluate.first_stage import Run, bm25_run
from rerankd.evaluate.measures import per_query
from rerankd.kinds import load_model
from rerankd.serving.batching import pack
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


def ndcg_at_10(data: cranfield.Cranfield, run: Run) -> float:
    """Mean NDCG@10 over the run's judged queries (rerankd.evaluate's measures, graded as judged)."""
    values = per_query(data.qrels, run)["NDCG@10"]
    return statistics.mean(values.values()) if values else 0.0


def _key(item: Encoded) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    types = tuple(item.token_type_ids) if item.token_type_ids is not None else None
    return tuple(item.input_ids), types


def run_fidelity(args: argparse.Namespace) -> None:
    import torch

    data = cranfield.load(args.cranfield)
    queries = data.judged_queries()[: args.queries]
    began = time.perf_counter()
    candidates = bm25_run(data, queries, args.top)
    print(f"BM25 top {args.top} of {len(queries)} queries: {time.perf_counter() - began:.1f} s", flush=True)
    precisions = args.precisions.split(",")
    if precisions[0] != "fp32":
        raise SystemExit("--precisions must start with fp32: the reference")
    base = TransformerSpec(
        name="all-minilm-l6-v2.real.bi-encoder",
        kind="bi-encoder",
        source=str(bundled_minilm_path()),
        device="cpu",
    )
    backends = {name: load_model(base.model_copy(update={"dtype": name})) for name in precisions}
    first = backends[precisions[0]]
    # Tokenization does not depend on the precision: prepare every request once.
    prepared = {
        query: first.prepare(data.queries[query], [data.documents[doc] for doc in docs], ScoreOptions())
        for query, docs in candidates.items()
    }
    distinct: dict[tuple[tuple[int, ...], tuple[int, ...] | None], int] = {}
    inputs: list[Encoded] = []
    for request in prepared.values():
        for item in request.inputs:
            if distinct.setdefault(_key(item), len(inputs)) == len(inputs):
                inputs.append(item)
    budget = args.budget or first.batch_tokens
    batches = pack([len(item) for item in inputs], budget, 256)
    pairs = len(queries) * args.top
    print(
        f"{pairs} pairs, {len(inputs)} distinct inputs ({sum(map(len, inputs))} tokens) in {len(batches)} "
        f"passes of <= {budget} tokens; precisions interleaved per pass",
        flush=True,
    )
    for backend in backends.values():  # warm-up: first passes set up kernels
        backend.forward(inputs[:8])
    outputs: dict[str, list[Any]] = {name: [None] * len(inputs) for name in precisions}
    seconds = dict.fromkeys(precisions, 0.0)
    for number, batch in enumerate(batches):
        chunk = [inputs[i] for i in batch]
        turn = number % len(precisions)  # each precision in turn goes first (caches warm for the next)
        for name in precisions[turn:] + precisions[:turn]:
            start = time.perf_counter()
            values = backends[name].forward(chunk)
            seconds[name] += time.perf_counter() - start
            for index, value in zip(batch, values, strict=True):
                outputs[name][index] = value
        if (number + 1) % max(1, len(batches) // 10) == 0:
            done = sum(len(b) for b in batches[: number + 1])
            rates = ", ".join(f"{name} {done / seconds[name]:.1f}/s" for name in precisions)
            print(f"  {done}/{len(inputs)} inputs: {rates}", flush=True)

    windows = len(inputs) - len(prepared)  # one query input per request, the rest are documents' windows
    rows: list[dict[str, Any]] = [
        {
            "precision": "BM25 (first stage)",
            "label": "bm25s",
            "ndcg@10": ndcg_at_10(data, candidates),
        }
    ]
    reference: list[list[float]] = []
    for name in precisions:
        scores = [
            prepared[query].combine([outputs[name][distinct[_key(item)]] for item in prepared[query].inputs])
            for query in candidates
        ]
        run = {
            query: dict(zip(docs, query_scores, strict=True))
            for (query, docs), query_scores in zip(candidates.items(), scores, strict=True)
        }
        row: dict[str, Any] = {
            "precision": name,
            "label": backends[name].precision,
            "pairs_per_s": len(inputs) / seconds[name],
            "seconds": seconds[name],
            "ndcg@10": ndcg_at_10(data, run),
        }
        if name == "fp32":
            reference = scores
        row.update(fidelity(reference, scores), speedup=seconds["fp32"] / seconds[name])
        rows.append(row)
        print(json.dumps(row), flush=True)
    fp32_ndcg = rows[1]["ndcg@10"]
    lines = [
        f"Real all-MiniLM-L6-v2 (bi-encoder) reranking BM25's top {args.top} for {len(queries)} Cranfield "
        f"queries ({pairs} pairs; per precision {len(inputs)} distinct inputs embedded: the queries and "
        f"{windows} windows of {len({doc for docs in candidates.values() for doc in docs})} abstracts); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: "
        f"{native_bf16(torch.device('cpu'))}, auto = {precision_label('auto', torch.device('cpu'))}.",
        "",
        "| precision | NDCG@10 | Δ NDCG@10 vs fp32 | max \\|Δ score\\| | Spearman | top-10 agreement "
        "| pairs/s | × fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "pairs_per_s" not in row:
            lines.append(f"| {row['precision']} | {row['ndcg@10']:.4f} | | | | | | |")
            continue
        lines.append(
            f"| {row['precision']} | {row['ndcg@10']:.4f} | {row['ndcg@10'] - fp32_ndcg:+.4f} | "
            f"{row['max_abs_delta']:.1e} | {row['spearman']:.4f} | {row['top10_agreement']:.3f} | "
            f"{row['pairs_per_s']:.1f} | {row['speedup']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision-fidelity.md").write_text(table + "\n", encoding="utf-8")
    (args.out / "precision-fidelity.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--requests", type=int, default=8, help="Cranfield queries (50 documents each)")
    parser.add_argument(
        "--precisions", default="fp32,bf16-autocast,bf16,int8", help="fp32 first: the reference"
    )
    parser.add_argument(
        "--budget", type=int, default=None, help="padded tokens per forward pass [default: the server's]"
    )
    parser.add_argument("--cache", type=Path, default=BENCH_CACHE)
    parser.add_argument(
        "--fidelity", action="store_true", help="NDCG@10 of each precision reranking BM25's candidates"
    )
    parser.add_argument("--queries", type=int, default=225, help="--fidelity: the first N Cranfield queries")
    parser.add_argument("--top", type=int, default=100, help="--fidelity: BM25 candidates per query")
    cranfield.add_argument(parser)
    args = parser.parse_args()
    if args.fidelity:
        run_fidelity(args)
        return

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
            budget = args.budget or backend.batch_tokens
            score_all(backend, requests[:1], budget)  # warm-up
            scores, seconds = score_all(backend, requests, budget)
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
