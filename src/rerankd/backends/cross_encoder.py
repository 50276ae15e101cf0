"""Cross-encoders (BERT / XLM-RoBERTa rerankers such as bge-reranker, ms-marco-MiniLM).

Each (query, document window) pair is one input: ``[CLS] query [SEP] document [SEP]``; documents
longer than the window are chunked (window scores combined as ``base.Windows`` says) or truncated,
never the query (see windows.py). The raw score is the logit of a one-label model, or the
difference of the two logits of a two-label model (so that the sigmoid the service applies equals
softmax of the positive label). Matches sentence-transformers ``CrossEncoder.predict`` on the same
inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rerankd.backends.base import Encoded, Prepared, Windows
from rerankd.backends.sources import resolve_source
from rerankd.backends.specs import TransformerSpec
from rerankd.backends.torch_runtime import (
    autocast_dtype,
    compute_context,
    default_batch_tokens,
    finish_model,
    pad_batch,
    precision_label,
    resolve_device,
    resolve_dtype,
)
from rerankd.backends.windows import FitPolicy, Windower
from rerankd.types import Activation, ScoreOptions

__all__ = ["CrossEncoderBackend"]

_ROBERTA_LIKE = {"roberta", "xlm-roberta", "camembert", "xlm-roberta-xl"}


def _default_max_length(tokenizer: Any, config: Any) -> int:
    limits = []
    if 0 < getattr(tokenizer, "model_max_length", 0) < 100_000:
        limits.append(int(tokenizer.model_max_length))
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        # RoBERTa-style position ids start after the padding index.
        offset = (config.pad_token_id or 0) + 1 if config.model_type in _ROBERTA_LIKE else 0
        limits.append(int(positions) - offset)
    return min(limits) if limits else 512


class CrossEncoderBackend:
    activation: Activation = "sigmoid"

    def __init__(self, model: Any, tokenizer: Any, device: torch.device, spec: TransformerSpec) -> None:
        num_labels = int(model.config.num_labels)
        if num_labels not in (1, 2):
            raise ValueError(f"a reranker needs 1 or 2 output labels; this model has {num_labels}")
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.spec = spec
        self.precision = precision_label(spec.dtype, device)
        self.autocast = autocast_dtype(spec.dtype, device)  # None: compute in the weights' dtype
        self.batch_tokens = default_batch_tokens(device)
        self.max_length = spec.max_length or _default_max_length(tokenizer, model.config)
        self.num_labels = num_labels
        # Decoder classifiers (e.g. Qwen3ForSequenceClassification) score each row's last token that is not
        # the config's pad id, and refuse batches when the config has none; encoders mask padding whatever
        # its id. So pad with the config's id, and give a config without one the tokenizer's.
        pad_id = getattr(model.config, "pad_token_id", None)
        if pad_id is None:
            pad_id = next((t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id) if t is not None), 0)
            model.config.pad_token_id = pad_id
        self.pad_id = int(pad_id)
        uses_token_types = "token_type_ids" in tokenizer.model_input_names and (
            getattr(model.config, "type_vocab_size", 1) > 1
        )
        self.windows = Windower(tokenizer, self.max_length, with_token_types=uses_token_types)

    @classmethod
    def load(cls, spec: TransformerSpec) -> CrossEncoderBackend:
        source = resolve_source(spec)
        device = resolve_device(spec.device)
        # Keywords spelled out: transformers types from_pretrained's keywords, and a **dict fits none of them.
        revision, remote = spec.revision, spec.trust_remote_code
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=remote)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, dtype=resolve_dtype(spec.dtype, device), revision=revision, trust_remote_code=remote
        )
        model = finish_model(model.eval().to(device), spec.dtype)
        return cls(model, tokenizer, device, spec)

    def prepare(self, query: str, documents: Sequence[str], options: ScoreOptions) -> Prepared:
        policy = FitPolicy.of(options, self.spec)
        fitted = self.windows.pairs(query, documents, policy)
        windows = Windows(fitted.owner, fitted.spans, len(documents), policy.best_window_weight)
        return Prepared(
            fitted.inputs,
            fitted.query_tokens,
            fitted.document_tokens,
            windows.document_scores,
            fitted.chunks,
            windows=windows,
            window_scores=list,
        )

    def forward(self, inputs: Sequence[Encoded]) -> list[float]:
        batch = pad_batch(inputs, self.pad_id, self.device)
        with torch.inference_mode(), compute_context(self.autocast, self.device):
            logits = self.model(**batch).logits.float()
        scores = logits[:, 0] if self.num_labels == 1 else logits[:, 1] - logits[:, 0]
        return [float(score) for score in scores.cpu()]
