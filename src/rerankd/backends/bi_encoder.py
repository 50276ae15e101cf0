"""Bi-encoders: sentence-transformers embeddings, scored by cosine similarity.

The query and each document are separate inputs (the query embedded once per request); the
scheduler may batch them with inputs of other requests. Embeddings are L2-normalised, so the
cosine is a dot product. The score is the cosine itself (activation ``identity``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from sentence_transformers import SentenceTransformer

from rerankd.backends.base import Encoded, Prepared
from rerankd.backends.sources import resolve_source
from rerankd.backends.torch_runtime import pad_batch, resolve_device, resolve_dtype
from rerankd.config import ModelSpec
from rerankd.types import Activation

__all__ = ["BiEncoderBackend"]


class BiEncoderBackend:
    activation: Activation = "identity"

    def __init__(self, model: SentenceTransformer, device: torch.device, max_length: int) -> None:
        self.model = model
        self.tokenizer: Any = model.tokenizer
        self.device = device
        self.max_length = max_length
        self.lowercase = bool(getattr(model[0], "do_lower_case", False))
        self.single_specials = self.tokenizer.num_special_tokens_to_add(pair=False)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.uses_token_types = "token_type_ids" in self.tokenizer.model_input_names

    @classmethod
    def load(cls, spec: ModelSpec) -> BiEncoderBackend:
        device = resolve_device(spec.device)
        model = SentenceTransformer(
            resolve_source(spec),
            device=str(device),
            revision=spec.revision,
            trust_remote_code=spec.trust_remote_code,
            model_kwargs={"dtype": resolve_dtype(spec.dtype, device)},
        )
        model.eval()
        max_length = spec.max_length or int(model.max_seq_length or 512)
        model.max_seq_length = max_length
        return cls(model, device, max_length)

    def prepare(self, query: str, documents: Sequence[str]) -> Prepared:
        texts = [query, *documents]
        if self.lowercase:
            texts = [text.lower() for text in texts]
        encoded = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
            return_token_type_ids=self.uses_token_types,
        )
        ids = encoded["input_ids"]
        types = encoded["token_type_ids"] if self.uses_token_types else [None] * len(ids)
        inputs = [Encoded(row, row_types) for row, row_types in zip(ids, types, strict=True)]
        counts = [len(row) - self.single_specials for row in ids]
        return Prepared(inputs, counts[0], counts[1:], combine=_cosine_to_query)

    def forward(self, inputs: Sequence[Encoded]) -> list[torch.Tensor]:
        batch = pad_batch(inputs, self.pad_id, self.device)
        with torch.inference_mode():
            embeddings = self.model(batch)["sentence_embedding"].float()
            embeddings = torch.nn.functional.normalize(embeddings, dim=-1).cpu()
        return list(embeddings)


def _cosine_to_query(outputs: list[Any]) -> list[float]:
    query, documents = outputs[0], torch.stack(outputs[1:])
    return [float(score) for score in documents @ query]
