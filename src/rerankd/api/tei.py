"""Hugging Face text-embeddings-inference's rerank API (``/tei/rerank``, ``/tei/info``; bare ``/rerank``
when the body has ``texts``, bare ``/info``).

Request ``{query, texts, raw_scores, return_text, truncate, truncation_direction}`` — no model: the
server's default model answers. Response: a bare list ``[{index, score, text?}]``, best first, one
entry per text unless the client sends ``top_n`` or ``top_k`` (TEI has neither, but litellm's
``huggingface/`` provider sends ``top_n``). ``truncate: true`` cuts long texts at
``truncation_direction`` (``Right`` by default); otherwise they are fitted the model's configured way
(chunking by default). Errors are ``{"error": ..., "error_type": ...}``; usage goes in the
``x-compute-tokens`` header.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, Field, RootModel

import rerankd
from rerankd.api.common import ServiceDep, caller, default_model, require_reader
from rerankd.api.dialect import SPAN_DESCRIPTION, Dialect, DialectRequest, ResultSpan, ranked
from rerankd.types import LongDocuments, RerankRequest, RerankResponse, ScoreOptions

__all__ = ["DIALECT", "INFO_ROUTE", "TeiRerankRequest", "info"]

_DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "bf16-autocast": "bfloat16", "fp16": "float16"}


class TeiRerankRequest(DialectRequest):
    query: str
    texts: list[str]
    return_text: bool = False
    truncate: bool | None = None
    truncation_direction: Literal["Right", "Left", "right", "left"] = "Right"
    model: str | None = Field(
        default=None, description="Not part of TEI; default: the server's default model."
    )
    top_n: int | None = Field(default=None, description="Not part of TEI: the N best (litellm sends it).")
    top_k: int | None = Field(default=None, description="Not part of TEI: the same as top_n.")

    def to_internal(self, default_model: str) -> RerankRequest:
        cut: LongDocuments = (
            "truncate_end" if self.truncation_direction.lower() == "right" else "truncate_start"
        )
        return self.internal(
            self.model or default_model,
            self.query,
            self.texts,
            self.top_n if self.top_n is not None else self.top_k,
            self.return_text,
            options=ScoreOptions(long_documents=cut if self.truncate else None),
        )


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None
    span: ResultSpan | None = Field(default=None, description=SPAN_DESCRIPTION)


class TeiRanking(RootModel[list[TeiRank]]):
    """The texts, best first."""


def render(response: RerankResponse, body: TeiRerankRequest) -> TeiRanking:
    return TeiRanking(ranked(response, TeiRank, score_field="score", document_field="text"))


def usage_headers(response: RerankResponse, body: TeiRerankRequest) -> dict[str, str]:
    return {
        "x-compute-tokens": str(response.usage.total_tokens),
        "x-compute-characters": str(len(body.query) + sum(len(text) for text in body.texts)),
    }


DIALECT = Dialect(
    name="tei",
    request=TeiRerankRequest,
    response=TeiRanking,
    render=render,
    paths=("/tei/rerank",),
    summary="Rerank (text-embeddings-inference format)",
    tag="rerank: tei",
    errors="tei",
    headers=usage_headers,
)


async def info(request: Request, service: ServiceDep) -> dict[str, Any]:
    """What TEI clients read from ``/info``: the served model is a reranker, and the limits."""
    settings = request.app.state.settings
    name = default_model(request)
    view = service.model(name, caller(request)) if name else None  # 403 for a key that may not use it
    # The budget the loaded model's scheduler uses; before loading, what is configured (TEI's own default
    # when nothing is: the real one depends on the device the model will load on).
    budget = view.loaded.batch_tokens if view and view.loaded else None
    budget = (
        budget or (view.settings.max_batch_tokens if view else None) or settings.max_batch_tokens or 16384
    )
    dtype = view.settings.dtype if view else None
    layout = view.loaded.layout if view and view.loaded else None
    return {
        "model_id": name,
        "model_sha": None,
        "model_dtype": _DTYPE_NAMES.get(dtype, dtype) if dtype else "float32",
        "model_type": {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}},
        "max_concurrent_requests": settings.max_queue_pairs,
        "max_input_length": (view.settings.max_length if view and view.settings.max_length else 512),
        "max_batch_tokens": budget,
        "max_batch_requests": None,
        "max_client_batch_size": settings.max_documents,
        "auto_truncate": True,
        "tokenization_workers": 1,
        # Not TEI's: how the loaded model's forward passes use the cores (threads_layout), and why.
        "threads_layout": layout.describe() if layout else None,
        "version": rerankd.__version__,
        "sha": None,
        "docker_label": None,
    }


INFO_ROUTE: dict[str, Any] = {
    "dependencies": [Depends(require_reader)],
    "summary": "Server info (text-embeddings-inference format)",
    "tags": ["rerank: tei"],
}
