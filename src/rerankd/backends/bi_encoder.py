"""Bi-encoders: sentence-transformers embeddings, scored by cosine similarity.

The query and each document (or each window of a long document; their scores combine as
``base.Windows`` says) are separate inputs, the query embedded once per request; the scheduler may
batch them with other requests' inputs. Embeddings are L2-normalised, so the cosine is a dot
product. The score is the cosine itself (activation ``identity``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from sentence_transformers import SentenceTransformer

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

__all__ = ["BiEncoderBackend"]


class BiEncoderBackend:
    activation: Activation = "identity"

    def __init__(self, model: SentenceTransformer, device: torch.device, spec: TransformerSpec) -> None:
        self.model = model
        self.tokenizer: Any = model.tokenizer
        self.device = device
        self.spec = spec
        self.precision = precision_label(spec.dtype, device)
        self.autocast = autocast_dtype(spec.dtype, device)  # None: compute in the weights' dtype
        self.batch_tokens = default_batch_tokens(device)
        self.max_length = spec.max_length or int(model.max_seq_length or 512)
        model.max_seq_length = self.max_length
        self.lowercase = bool(getattr(model[0], "do_lower_case", False))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        uses_token_types = "token_type_ids" in self.tokenizer.model_input_names
        self.windows = Windower(self.tokenizer, self.max_length, with_token_types=uses_token_types)

    @classmethod
    def load(cls, spec: TransformerSpec) -> BiEncoderBackend:
        device = resolve_device(spec.device)
        model = SentenceTransformer(
            resolve_source(spec),
            device=str(device),
            revision=spec.revision,
            trust_remote_code=spec.trust_remote_code,
            model_kwargs={"dtype": resolve_dtype(spec.dtype, device)},
        )
        model.eval()
        transformer = cast(torch.nn.Module, model[0].auto_model)
        finish_model(transformer, spec.dtype)
        return cls(model, device, spec)

    def prepare(self, query: str, documents: Sequence[str], options: ScoreOptions) -> Prepared:
        originals = documents
        if self.lowercase:
            query, documents = query.lower(), [document.lower() for document in documents]
        policy = FitPolicy.of(options, self.spec)
        query_input, fitted = self.windows.singles(query, documents, policy)
        spans = fitted.spans
        if self.lowercase and any(len(a) != len(b) for a, b in zip(originals, documents, strict=True)):
            spans = _original_spans(originals, fitted.owner, spans)
        windows = Windows(fitted.owner, spans, len(documents), policy.best_window_weight)

        def window_scores(outputs: list[Any]) -> list[float]:
            query_vector, embedded = outputs[0], torch.stack(outputs[1:])
            # An elementwise product, not a matrix product: each cosine is then the same whatever the
            # other documents of the request (a matmul's blocking moves the last bits).
            return [float(score) for score in (embedded * query_vector).sum(-1)]

        def combine(outputs: list[Any]) -> list[float]:
            return windows.document_scores(window_scores(outputs))

        inputs = [query_input, *fitted.inputs]
        return Prepared(
            inputs,
            fitted.query_tokens,
            fitted.document_tokens,
            combine,
            fitted.chunks,
            windows=windows,
            window_scores=window_scores,
        )

    def forward(self, inputs: Sequence[Encoded]) -> list[torch.Tensor]:
        batch = pad_batch(inputs, self.pad_id, self.device)
        with torch.inference_mode(), compute_context(self.autocast, self.device):
            embeddings = self.model(batch)["sentence_embedding"].float()
            embeddings = torch.nn.functional.normalize(embeddings, dim=-1).cpu()
        return list(embeddings)


def _original_spans(
    originals: Sequence[str], owner: Sequence[int], spans: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Spans in the lower-cased text, moved to the text as sent: a few characters lower-case to two
    (e.g. "İ"), which shifts every offset after them."""
    moved = []
    for document, (start, end) in zip(owner, spans, strict=True):
        text = originals[document]
        source = [p for p, character in enumerate(text) for _ in character.lower()]  # lowered -> original
        source.append(len(text))
        moved.append((source[min(start, len(source) - 1)], source[end - 1] + 1 if end > 0 else 0))
    return moved
