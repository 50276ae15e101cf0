"""Cost per (query, document) pair: an LLM reranker against a cross-encoder of similar size, in process.

    .venv/bin/python benchmarks/bench_llm_reranker.py                      # ~10 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_llm_reranker.py --doc-tokens 128 --repeats 1     # a quick look

Models (random weights, generated into ``.cache/bench-models/`` on first use and reused):

* ``qwen3-0.6b``: the shape of Qwen/Qwen3-Reranker-0.6B (28 layers, hidden 1024, 16 query / 8 key-value
  heads, MLP 3072, 151,669-token vocabulary; 596M parameters, 440M of them outside the embedding), with
  the synthetic byte-level BPE tokenizer, served by the ``llm-reranker`` backend with the Qwen3 prompt;
* ``bert-large``: a BERT cross-encoder of the same width and depth class (24 layers, hidden 1024, MLP
  4096; 335M parameters, 302M outside the embedding): the transformer body of bge-reranker-v2-m3
  (XLM-RoBERTa-large, whose larger vocabulary costs memory, not time), with the real WordPiece vocabulary
  of the bundled all-MiniLM-L6-v2, served by the ``cross-encoder`` backend.

The weights are random, so scores are meaningless; the cost of computing them is the real one.

Every request is one query and ``--docs`` documents cut to exactly ``--doc-tokens`` tokens each (with
``max_tokens_per_doc``), so both models read documents of the same length; what differs is what each
puts around them: ``[CLS] query [SEP] document [SEP]`` against Qwen3's chat prompt (system prompt,
instruction, query, assistant turn: about 70 tokens besides the query). Inputs go through the backends'
``prepare`` and are packed into forward passes the way the scheduler packs them (``--max-batch-tokens``).
The LLM reranker runs twice: with every row computed in full, and with the rows' shared prefix (the
prompt up to the document) computed once per batch and its keys and values reused (the default).

Variants are measured in turns (A, B, C, A, B, C, ...) so that load from elsewhere on the machine hits
them alike. The table shows wall-clock ms per pair (median and best of ``--repeats``), pairs/s of the best
run, and CPU-ms per pair (median; CPU time of the process's threads, which other load inflates far less
than the wall clock); "vs CE" is the CPU cost relative to the cross-encoder at the same document length.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.backends.llm_reranker import LlmRerankerBackend
from rerankd.batching import pack
from rerankd.config import ModelSpec
from rerankd.synthetic import bundled_minilm_path, make_qwen3_reranker, training_corpus
from rerankd.types import ScoreOptions

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO / ".cache" / "bench-models"
QUERY = "What is the pressure distribution on a swept wing at high mach number?"
BERT_SHAPES: dict[str, dict[str, int]] = {
    "bert-large": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
    },
    "bert-base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
}


@dataclass
class Row:
    variant: str
    doc_tokens: int
    pairs: int
    tokens_per_pair: float  # real tokens of one input, prompt included
    runs_s: list[float]  # forward passes of one request, per repeat (wall clock)
    cpu_s: list[float]  # the same passes in CPU time of this process, all threads
    tokenize_ms_per_pair: float

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.runs_s) / self.pairs

    @property
    def best_ms(self) -> float:
        return 1000 * min(self.runs_s) / self.pairs

    @property
    def cpu_ms(self) -> float:
        return 1000 * statistics.median(self.cpu_s) / self.pairs


def make_bert(out_dir: Path, shape: str) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    if (out_dir / "config.json").is_file():
        return out_dir
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    for key, value in BERT_SHAPES[shape].items():
        setattr(config, key, value)
    config.num_labels = 1
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(out_dir))
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def make_qwen(out_dir: Path, arch: str) -> Path:
    if not (out_dir / "config.json").is_file():
        make_qwen3_reranker(out_dir, arch=arch)  # type: ignore[arg-type]
    return out_dir


def documents(count: int) -> list[str]:
    """``count`` different long texts (each far more than 512 tokens), cut to length by the backends."""
    corpus = training_corpus()
    return [" ".join(corpus[(i * 37 + k) % len(corpus)] for k in range(60)) for i in range(count)]


@dataclass
class Measured:
    seconds: float  # forward passes, wall clock
    cpu_seconds: float  # forward passes, CPU time of all threads
    tokenize_seconds: float
    scores: list[float]
    tokens: int


def timed_request(backend: Any, docs: list[str], doc_tokens: int, max_batch_tokens: int) -> Measured:
    """Score one request the way the scheduler does: prepare, then length-sorted packed forward passes."""
    options = ScoreOptions(max_tokens_per_doc=doc_tokens, long_documents="truncate_end")
    began = time.perf_counter()
    prepared = backend.prepare(QUERY, docs, options)
    tokenized = time.perf_counter()
    cpu_began = time.process_time()
    outputs: list[float] = [0.0] * len(prepared.inputs)
    lengths = [len(item) for item in prepared.inputs]
    for batch in pack(lengths, max_batch_tokens, 256):
        for index, value in zip(batch, backend.forward([prepared.inputs[i] for i in batch]), strict=True):
            outputs[index] = value
    cpu = time.process_time() - cpu_began
    done = time.perf_counter()
    return Measured(done - tokenized, cpu, tokenized - began, prepared.combine(outputs), sum(lengths))


def run(args: argparse.Namespace) -> list[Row]:
    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    print(f"generating or reusing models in {cache} ...", flush=True)
    qwen_dir = make_qwen(cache / f"{args.qwen_arch}-reranker", args.qwen_arch)
    bert_dir = make_bert(cache / f"{args.bert_arch}-seed0", args.bert_arch)
    common = {"device": "cpu", "dtype": args.dtype}
    llm = LlmRerankerBackend.load(ModelSpec(name="llm", kind="llm-reranker", source=str(qwen_dir), **common))
    bert = CrossEncoderBackend.load(
        ModelSpec(name="ce", kind="cross-encoder", source=str(bert_dir), max_length=512, **common)
    )

    def with_sharing(share: bool) -> Callable[[], Any]:
        def use() -> Any:
            llm.share_prefix = share
            return llm

        return use

    variants: dict[str, Callable[[], Any]] = {
        f"cross-encoder {args.bert_arch}": lambda: bert,
        f"llm-reranker {args.qwen_arch}": with_sharing(False),
        f"llm-reranker {args.qwen_arch} + shared prefix": with_sharing(True),
    }
    docs = documents(args.docs)
    rows: list[Row] = []
    for doc_tokens in args.doc_tokens:
        print(f"\n{args.docs} documents of {doc_tokens} tokens", flush=True)
        for use in variants.values():  # warm-up: first passes at a new shape pay for allocation
            timed_request(use(), docs[:2], doc_tokens, args.max_batch_tokens)
        measured: dict[str, list[Measured]] = {name: [] for name in variants}
        for repeat in range(args.repeats):
            for name, use in variants.items():
                result = timed_request(use(), docs, doc_tokens, args.max_batch_tokens)
                measured[name].append(result)
                wall, cpu = 1000 * result.seconds / args.docs, 1000 * result.cpu_seconds / args.docs
                print(
                    f"  [{repeat + 1}/{args.repeats}] {name}: {wall:.0f} ms/pair, {cpu:.0f} CPU-ms/pair",
                    flush=True,
                )
        names = list(variants)
        full, shared = measured[names[1]][-1].scores, measured[names[2]][-1].scores
        difference = max(abs(a - b) for a, b in zip(full, shared, strict=True))
        print(f"  shared prefix vs full rows: largest score difference {difference:.2e}")
        for name in names:
            runs = measured[name]
            rows.append(
                Row(
                    variant=name,
                    doc_tokens=doc_tokens,
                    pairs=args.docs,
                    tokens_per_pair=runs[0].tokens / args.docs,
                    runs_s=[run.seconds for run in runs],
                    cpu_s=[run.cpu_seconds for run in runs],
                    tokenize_ms_per_pair=1000
                    * statistics.median(run.tokenize_seconds for run in runs)
                    / args.docs,
                )
            )
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| model | doc tokens | tokens/pair | ms/pair median | ms/pair best | pairs/s best | CPU-ms/pair "
        "| vs CE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    baseline: dict[int, float] = {}
    for row in rows:
        baseline.setdefault(row.doc_tokens, row.cpu_ms)  # the cross-encoder comes first
        ratio = row.cpu_ms / baseline[row.doc_tokens]
        lines.append(
            f"| {row.variant} | {row.doc_tokens} | {row.tokens_per_pair:.0f} | {row.median_ms:.0f} | "
            f"{row.best_ms:.0f} | {1000 / row.best_ms:.2f} | {row.cpu_ms:.0f} | {ratio:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="where generated models are kept")
    parser.add_argument("--qwen-arch", default="qwen3-0.6b", choices=["qwen3-0.6b", "tiny"])
    parser.add_argument("--bert-arch", default="bert-large", choices=sorted(BERT_SHAPES))
    parser.add_argument("--docs", type=int, default=8, help="documents per request")
    parser.add_argument(
        "--doc-tokens", type=lambda text: [int(x) for x in text.split(",")], default=[64, 128, 256]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-batch-tokens", type=int, default=8192)
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load = os.getloadavg()
    rows = run(args)
    header = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads, {args.dtype}; "
        f"load average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}"
    )
    print(f"\n{header}\n\n{table(rows)}")
    if args.out:
        args.out.write_text(
            json.dumps({"header": header, "rows": [asdict(row) for row in rows]}, indent=2), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
