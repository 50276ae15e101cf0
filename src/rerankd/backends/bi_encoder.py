"""Bi-encoders: sentence-transformers embeddings, scored by cosine similarity.

The query and each document (or each window of a long document; the best window wins) are separate
inputs, the query embedded once per request; the scheduler may batch them with other requests'
inputs. Embeddings are L2-normalised, so the cosine is a dot product. The score is the cosine itself
(activation ``identity``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from sentence_transformers import SentenceTransformer

from rerankd.backends.base import Encoded, Prepared, best_per_document
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
        if self.lowercase:
            query, documents = query.lower(), [document.lower() for document in documents]
        query_input, fitted = self.windows.singles(query, documents, FitPolicy.of(options, self.spec))
        count = len(documents)

        def combine(outputs: list[Any]) -> list[float]:
            query_vector, windows = outputs[0], torch.stack(outputs[1:])
            # An elementwise product, not a matrix product: each cosine is then the same whatever the
            # other documents of the request (a matmul's blocking moves the last bits).
            cosines = [float(score) for score in (windows * query_vector).sum(-1)]
            return best_per_document(fitted.owner, count, cosines)

        inputs = [query_input, *fitted.inputs]
        return Prepared(inputs, fitted.query_tokens, fitted.document_tokens, combine, fitted.chunks)

    def forward(self, inputs: Sequence[Encoded]) -> list[torch.Tensor]:
        batch = pad_batch(inputs, self.pad_id, self.device)
        with torch.inference_mode(), compute_context(self.autocast, self.device):
            embeddings = self.model(batch)["sentence_embedding"].float()
            embeddings = torch.nn.functional.normalize(embeddings, dim=-1).cpu()
        return list(embeddings)
