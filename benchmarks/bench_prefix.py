"""Shared prefixes in the LLM reranker: pairs/s with and without, against the share of tokens they save.

    .venv/bin/python benchmarks/bench_prefix.py                         # Qwen3-0.6B shape, ~15 min on 2 cores
    .venv/bin/python benchmarks/bench_prefix.py --arch tiny --repeats 1  # the mechanics, seconds

An LLM reranker's prompt puts the system turn, the instruction and the query before each document, so all
documents of a request begin with the same tokens. The ``llm-reranker`` backend computes that prefix's
keys and values once per forward pass and runs only each document and the prompt's end on top of them
(``share_prefix``; ``llm_reranker.MIN_SHARED_PREFIX``). Here one request of ``--docs`` documents of exactly
``--doc-tokens`` tokens each (distinct Cranfield-like texts, cut with ``max_tokens_per_doc``) and a query of
about ``--query-tokens`` tokens goes through the backend's ``prepare`` and the scheduler's packing
(``--max-batch-tokens``), then its passes run with every row computed in full and with the shared prefix,
in turns (full, shared, full, shared, ...), best of ``--repeats``.

"tokens saved" is 1 - (the tokens the shared passes compute: each pass's prefix once and every row's own
tokens) / (the rows' tokens), padding left out of both; "expected" is the speed-up that saving would give
if a pass cost the same per token computed: 1 / (1 - saved). A gain well below it means something else
costs: the prefix's keys and values are copied once per row, and each row's own tokens still attend to the
whole prefix. The largest score difference between the two ways is printed too (fp32: below 1e-4).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rerankd_support.corpus import training_corpus
from rerankd_support.models import make_qwen3_reranker
from rerankd_support.paths import BENCH_CACHE

from rerankd.backends.base import Encoded
from rerankd.backends.llm_reranker import MIN_SHARED_PREFIX, LlmRerankerBackend, shared_prefix_length
from rerankd.backends.specs import LlmRerankerSpec
from rerankd.serving.batching import pack
from rerankd.types import ScoreOptions

WORDS = training_corpus()


@dataclass
class Cell:
    query_tokens: int
    doc_tokens: int
    pairs: int
    row_tokens: int  # the rows' tokens, as computed without sharing (no padding)
    shared_tokens: int  # the tokens computed with sharing: each pass's prefix once, the rows' own tokens
    full_s: list[float]
    shared_s: list[float]
    largest_difference: float

    @property
    def saved(self) -> float:
        return 1.0 - self.shared_tokens / self.row_tokens

    @property
    def full_rate(self) -> float:
        return self.pairs / min(self.full_s)

    @property
    def shared_rate(self) -> float:
        return self.pairs / min(self.shared_s)


def model_folder(cache: Path, arch: str) -> Path:
    """The generated Qwen3 reranker of ``arch``, built once (the folder ``bench_ceiling.py`` uses too)."""
    folder = cache / (f"{arch}-seed0" if arch != "tiny" else "qwen3-tiny-seed0")
    if not (folder / ".complete").is_file():
        print(f"generating {arch} in {folder} ...", flush=True)
        make_qwen3_reranker(folder, arch=arch)  # type: ignore[arg-type]
        (folder / ".complete").write_text("ok\n", encoding="utf-8")
    return folder


def text(backend: LlmRerankerBackend, tokens: int, offset: int) -> str:
    """Text of at least ``tokens`` tokens (the documents are cut to length by ``max_tokens_per_doc``; the
    query is this long to within a word)."""
    words: list[str] = []
    index = offset
    while len(backend.rust.encode(" ".join(words), add_special_tokens=False).ids) < tokens:
        words.extend(WORDS[index % len(WORDS)].split()[:8])
        index += 7
    while (
        len(words) > 1
        and len(backend.rust.encode(" ".join(words[:-1]), add_special_tokens=False).ids) >= tokens
    ):
        words.pop()
    return " ".join(words)


def run_passes(
    backend: LlmRerankerBackend, batches: list[list[Encoded]], share: bool
) -> tuple[float, list[float]]:
    backend.share_prefix = share
    began = time.perf_counter()
    scores = [score for batch in batches for score in backend.forward(batch)]
    return time.perf_counter() - began, scores


def measure(
    backend: LlmRerankerBackend, args: argparse.Namespace, query_tokens: int, doc_tokens: int
) -> Cell:
    query = text(backend, query_tokens, 1)
    documents = [text(backend, doc_tokens + 8, 100 + 37 * n) for n in range(args.docs)]
    options = ScoreOptions(max_tokens_per_doc=doc_tokens, long_documents="truncate_end")
    inputs = backend.prepare(query, documents, options).inputs
    batches = [
        [inputs[i] for i in batch] for batch in pack([len(x) for x in inputs], args.max_batch_tokens, 256)
    ]
    row_tokens = sum(len(item) for item in inputs)
    shared_tokens = 0
    for batch in batches:
        shared = shared_prefix_length(batch) if len(batch) > 1 else 0
        shared = shared if shared >= MIN_SHARED_PREFIX else 0
        shared_tokens += shared + sum(len(item) - shared for item in batch)
    run_passes(backend, batches[:1], False)  # first passes at a new shape build their kernels
    run_passes(backend, batches[:1], True)
    full_s: list[float] = []
    shared_s: list[float] = []
    difference = 0.0
    for repeat in range(args.repeats):
        took, full = run_passes(backend, batches, False)
        full_s.append(took)
        took, with_prefix = run_passes(backend, batches, True)
        shared_s.append(took)
        difference = max(difference, *(abs(a - b) for a, b in zip(full, with_prefix, strict=True)))
        print(
            f"  query {query_tokens}, documents {doc_tokens} [{repeat + 1}/{args.repeats}]: "
            f"full {args.docs / full_s[-1]:.2f}, shared {args.docs / shared_s[-1]:.2f} pairs/s",
            flush=True,
        )
    backend.share_prefix = True
    return Cell(
        query_tokens, doc_tokens, len(documents), row_tokens, shared_tokens, full_s, shared_s, difference
    )


def table(cells: list[Cell]) -> str:
    lines = [
        "| query tokens | doc tokens | tokens/pair | pairs/s full | pairs/s shared | speed-up | tokens saved "
        "| expected from tokens | speed-up ÷ expected | max \\|Δ score\\| |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in cells:
        speedup, expected = cell.shared_rate / cell.full_rate, 1.0 / (1.0 - cell.saved)
        lines.append(
            f"| {cell.query_tokens} | {cell.doc_tokens} | {cell.row_tokens / cell.pairs:.0f} | "
            f"{cell.full_rate:.2f} | {cell.shared_rate:.2f} | {speedup:.2f}x | {100 * cell.saved:.0f}% | "
            f"{expected:.2f}x | {speedup / expected:.2f} | {cell.largest_difference:.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="qwen3-0.6b", choices=["qwen3-0.6b", "tiny"], help="[qwen3-0.6b]")
    parser.add_argument("--dtype", default="auto", help="the model's dtype [auto]")
    parser.add_argument("--docs", type=int, default=8, help="documents per request [8]")
    parser.add_argument("--query-tokens", default="16,64,256", help="query lengths in tokens [16,64,256]")
    parser.add_argument("--doc-tokens", default="128,512", help="document lengths in tokens [128,512]")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each way, the best kept [2]")
    parser.add_argument("--max-batch-tokens", type=int, default=4096, help="the CPU's default budget [4096]")
    parser.add_argument("--cache", type=Path, default=BENCH_CACHE)
    parser.add_argument("--out", type=Path, help="also write the cells as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load = os.getloadavg()
    folder = model_folder(args.cache, args.arch)
    spec = LlmRerankerSpec(name=args.arch, kind="llm-reranker", source=str(folder), dtype=args.dtype)
    backend = LlmRerankerBackend.load(spec)
    print(f"{args.arch}, {backend.precision}, {torch.get_num_threads()} threads", flush=True)
    cells = [
        measure(backend, args, int(query), int(doc))
        for doc in args.doc_tokens.split(",")
        for query in args.query_tokens.split(",")
    ]
    header = (
        f"{args.arch} ({backend.precision}), {args.docs} documents per request, budget "
        f"{args.max_batch_tokens} tokens, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"load average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}"
    )
    print(f"\n{header}\n\n{table(cells)}")
    if args.out:
        rows = [{**asdict(cell), "saved": cell.saved} for cell in cells]
        args.out.write_text(json.dumps({"header": header, "cells": rows}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
