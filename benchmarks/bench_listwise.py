"""Pairs/s of jina-reranker-v3 (kind: listwise) and of a ModernBERT cross-encoder, in process, on random
models of their real shapes (generated into ``.cache/bench-models/`` on first use and reused).

    .venv/bin/python benchmarks/bench_listwise.py                     # both, 20 documents of 256 tokens
    .venv/bin/python benchmarks/bench_listwise.py --arch tiny --docs 8 --doc-tokens 64

* ``jina-reranker-v3``: Qwen3-0.6B's backbone (28 layers, hidden 1024) and the projector; one request is
  one sequence of all its documents (a block), so pairs/s is documents per second of that sequence;
* ``gte-reranker-modernbert-base``: ModernBERT-base (22 layers, hidden 768), mean pooling, through the
  cross-encoder backend, pairs packed into passes as the scheduler packs them.

Every document is cut to ``--doc-tokens`` tokens; fp32; the best of ``--repeats`` runs. The weights are
random: the scores mean nothing, the cost is the real one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rerankd_support.corpus import training_corpus
from rerankd_support.models import make_jina_reranker_v3, make_modernbert_cross_encoder
from rerankd_support.paths import BENCH_CACHE

from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.backends.listwise import ListwiseBackend
from rerankd.backends.specs import ListwiseSpec, TransformerSpec
from rerankd.serving.batching import pack
from rerankd.types import ScoreOptions

QUERY = "What is the pressure distribution on a swept wing at high mach number?"


def documents(count: int) -> list[str]:
    text = " ".join(training_corpus())
    step = max(1, len(text) // count)
    return [(text[i * step :] + " " + text)[:4000] for i in range(count)]


def best_seconds(run: Any, repeats: int) -> float:
    run()  # warm up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=["full", "tiny"], default="full")
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--doc-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=BENCH_CACHE)
    args = parser.parse_args()
    full = args.arch == "full"
    options = ScoreOptions(max_tokens_per_doc=args.doc_tokens, long_documents="truncate_end")
    texts = documents(args.docs)

    jina = args.cache / ("jina-reranker-v3-0.6b" if full else "jina-reranker-v3-tiny")
    if not (jina / "model.safetensors").is_file():
        make_jina_reranker_v3(jina, arch="qwen3-0.6b" if full else "tiny")
    listwise = ListwiseBackend.load(ListwiseSpec(name="j", kind="listwise", source=str(jina), dtype="fp32"))
    seconds = best_seconds(lambda: listwise.score(QUERY, texts, options), args.repeats)
    tokens = listwise.score(QUERY, texts, options)
    total = tokens.query_tokens + sum(tokens.document_tokens)
    print(
        f"jina-reranker-v3 ({args.arch}): {args.docs / seconds:.2f} pairs/s ({total} tokens in one sequence)"
    )

    modernbert = args.cache / ("modernbert-base-mean" if full else "modernbert-tiny-mean")
    if not (modernbert / "config.json").is_file():
        make_modernbert_cross_encoder(modernbert, arch="modernbert-base" if full else "tiny")
    spec = TransformerSpec(name="m", kind="cross-encoder", source=str(modernbert), dtype="fp32")
    encoder = CrossEncoderBackend.load(spec)

    def cross_encode() -> None:
        inputs = encoder.prepare(QUERY, texts, options).inputs
        for batch in pack([len(item) for item in inputs], encoder.batch_tokens, 64):
            encoder.forward([inputs[i] for i in batch])

    seconds = best_seconds(cross_encode, args.repeats)
    print(f"modernbert cross-encoder ({args.arch}): {args.docs / seconds:.2f} pairs/s")


if __name__ == "__main__":
    main()
