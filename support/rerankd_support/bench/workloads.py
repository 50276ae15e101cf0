"""The requests a performance cell sends, and what each one costs to compute.

:class:`Arch` counts a model's FLOPs per (query, document) pair from its config; a :class:`Workload` is a
list of request payloads with, per payload, its real forward tokens, its useful FLOPs and the padded
tokens the naive server's ``CrossEncoder.predict`` computes for it. Workloads come from Cranfield
(:func:`cranfield_workload`) or from documents cut to a fixed number of tokens
(:func:`fixed_length_workload`, for the length sweep).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rerankd_support import cranfield
from rerankd_support.bench.load import Payload

__all__ = [
    "Arch",
    "PayloadStats",
    "Workload",
    "cranfield_workload",
    "fixed_length_workload",
    "make_workload",
    "naive_padded_tokens",
    "token_stream",
]

NAIVE_BATCH_SIZE = 32  # CrossEncoder.predict's default


@dataclass(frozen=True)
class Arch:
    """What a model's forward pass computes, from its config: a BERT-style encoder, or (``decoder``) a
    Qwen3-style causal LM scored at its last token (grouped-query attention, gated MLP)."""

    layers: int
    hidden: int
    intermediate: int
    decoder: bool = False
    query_width: int = 0  # decoders: attention heads x head_dim (0: hidden)
    key_value_width: int = 0  # decoders: key/value heads x head_dim (0: hidden)
    vocabulary: int = 0  # decoders: the LM head's rows, computed at the last position only

    @classmethod
    def from_folder(cls, model_dir: Path) -> Arch:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        layers, hidden, intermediate = (
            config["num_hidden_layers"],
            config["hidden_size"],
            config["intermediate_size"],
        )
        if not str(config.get("model_type", "")).startswith("qwen"):
            return cls(layers, hidden, intermediate)
        head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
        classifier = any(
            name.endswith("ForSequenceClassification") for name in config.get("architectures") or []
        )
        return cls(
            layers,
            hidden,
            intermediate,
            decoder=True,
            query_width=config["num_attention_heads"] * head_dim,
            key_value_width=config.get("num_key_value_heads", config["num_attention_heads"]) * head_dim,
            vocabulary=1 if classifier else config["vocab_size"],
        )

    @property
    def linear_flops_per_token(self) -> float:
        """Q, K, V and output projections plus the feed-forward (2 H x I; a decoder's gated MLP 3 H x I);
        a multiply-add is 2. An encoder's Q, K, V and output are H x H each (4 H x H)."""
        h, i = self.hidden, self.intermediate
        q, kv = self.query_width or h, self.key_value_width or h
        return 2.0 * self.layers * (2 * h * q + 2 * h * kv + (3 if self.decoder else 2) * h * i)

    def pair_flops(self, length: int) -> float:
        """One sequence of ``length`` tokens: the linear layers, attention's L^2 part (Q K^T and the
        weighted sum of V, 2 L^2 H each per layer; half of it for a causal decoder, whose later tokens
        only see earlier ones) and the head: an encoder's pooler + one-logit classifier on [CLS], a
        decoder's LM head at the last position (logit(yes) - logit(no) is read from it)."""
        if self.decoder:
            attention = 2.0 * self.layers * length * length * (self.query_width or self.hidden)
            return length * self.linear_flops_per_token + attention + 2.0 * self.hidden * self.vocabulary
        h = self.hidden
        attention = 4.0 * self.layers * length * length * h
        head = 2.0 * h * h + 2.0 * h
        return length * self.linear_flops_per_token + attention + head


@dataclass(frozen=True)
class PayloadStats:
    forward_tokens: int  # sum of the (query, document) pair lengths: special tokens in, truncated, no padding
    flops: float  # useful FLOPs: Arch.pair_flops over those lengths
    naive_padded: int  # tokens CrossEncoder.predict computes for it, padding included


@dataclass
class Workload:
    payloads: list[Payload]
    stats: list[PayloadStats]

    @property
    def mean_pair_tokens(self) -> float:
        pairs = sum(p.pairs for p in self.payloads)
        return sum(s.forward_tokens for s in self.stats) / max(1, pairs)


def naive_padded_tokens(query: str, documents: Sequence[str], lengths: Sequence[int]) -> int:
    """Padded tokens of ``CrossEncoder.predict``: it sorts pairs by character length (longest first) and
    pads each batch of 32 to its longest member (sentence-transformers 3-6)."""
    order = np.argsort([-(len(query) + len(doc)) for doc in documents])
    total = 0
    for start in range(0, len(order), NAIVE_BATCH_SIZE):
        batch = [lengths[i] for i in order[start : start + NAIVE_BATCH_SIZE]]
        total += len(batch) * max(batch)
    return total


def make_workload(bodies: list[dict[str, Any]], tokenizer: Any, arch: Arch, max_length: int) -> Workload:
    payloads, stats = [], []
    for body in bodies:
        query, documents = body["query"], body["documents"]
        encoded = tokenizer([query] * len(documents), documents, truncation=True, max_length=max_length)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        payloads.append(Payload(json.dumps(body).encode(), len(documents), sum(lengths)))
        stats.append(
            PayloadStats(
                forward_tokens=sum(lengths),
                flops=sum(arch.pair_flops(length) for length in lengths),
                naive_padded=naive_padded_tokens(query, documents, lengths),
            )
        )
    return Workload(payloads, stats)


def cranfield_workload(
    model: str, n_docs: int, data: cranfield.Cranfield, tokenizer: Any, arch: Arch, args: argparse.Namespace
) -> Workload:
    # Enough distinct requests that a cell never repeats one back to back; fewer for huge ones.
    count = len(data.qrels) if n_docs <= 100 else 8
    bodies = cranfield.make_requests(n_docs, count, args.seed, data=data, model=model)
    return make_workload(bodies, tokenizer, arch, args.max_length)


def fixed_length_workload(
    model: str,
    doc_tokens: int,
    data: cranfield.Cranfield,
    tokenizer: Any,
    arch: Arch,
    args: argparse.Namespace,
    stream: list[int],
) -> Workload:
    """Requests of ``--scaling-length-docs`` documents of ``doc_tokens`` tokens each, cut from the
    Cranfield abstracts run together, with Cranfield queries."""
    rng = random.Random(args.seed + doc_tokens)
    queries = data.judged_queries()
    bodies = []
    for request in range(8):
        documents = []
        for _ in range(args.scaling_length_docs):
            start = rng.randrange(0, len(stream) - doc_tokens)
            documents.append(tokenizer.decode(stream[start : start + doc_tokens], skip_special_tokens=True))
        query = data.queries[queries[(request * 37) % len(queries)]]
        bodies.append(
            {
                "model": model,
                "query": query,
                "documents": documents,
                "top_n": len(documents),
                "return_documents": False,
            }
        )
    return make_workload(bodies, tokenizer, arch, args.max_length)


def token_stream(data: cranfield.Cranfield, tokenizer: Any) -> list[int]:
    texts = list(data.documents.values())
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
        stream.extend(ids)
    return stream
