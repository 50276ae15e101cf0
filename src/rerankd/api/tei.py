"""Hugging Face text-embeddings-inference's rerank API (``/tei/rerank``, ``/tei/info``; bare ``/rerank``
when the body has ``texts``, bare ``/info``).

Request ``{query, texts, raw_scores, return_text, truncate, truncation_direction}`` — no model: the
server's default model answers. Response: a bare list ``[{index, score, text?}]``, best first, one
entry per text. ``truncate: true`` cuts long texts at ``truncation_direction`` (``Right`` by
default); otherwise they are fitted the model's configured way (chunking by default). Errors are
``{"error": ..., "error_type": ...}``; usage goes in the ``x-compute-tokens`` header.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import rerankd
from rerankd.api.common import RERANK_ERRORS, DialectRequest, default_model, require_key, rerank
from rerankd.errors import RerankdError
from rerankd.types import RerankRequest, RerankResponse, ScoreOptions

__all__ = ["TeiRerankRequest", "endpoint", "error_body", "info", "router"]

_DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_ERROR_TYPES = {401: "Unauthorized", 429: "Overloaded", 503: "Unhealthy", 500: "Backend"}


def error_body(exc: RerankdError) -> dict[str, Any]:
    return {"error": exc.message, "error_type": _ERROR_TYPES.get(exc.status, "Validation")}


class TeiRerankRequest(DialectRequest):
    query: str
    texts: list[str]
    return_text: bool = False
    truncate: bool | None = None
    truncation_direction: Literal["Right", "Left", "right", "left"] = "Right"
    model: str | None = Field(
        default=None, description="Not part of TEI; default: the server's default model."
    )

    def to_internal(self, request: Request) -> RerankRequest:
        cut = "truncate_end" if self.truncation_direction.lower() == "right" else "truncate_start"
        return RerankRequest(
            model=default_model(request, self.model),
            query=self.query,
            documents=tuple(self.texts),
            top_n=None,
            return_documents=self.return_text,
            raw_scores=self.raw_scores,
            options=ScoreOptions(long_documents=cut if self.truncate else None, instruction=self.instruction),
        )


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None


def render(response: RerankResponse) -> list[dict[str, Any]]:
    ranks: list[dict[str, Any]] = []
    for item in response.results:
        rank: dict[str, Any] = {"index": item.index, "score": item.relevance_score}
        if item.document is not None:
            rank["text"] = item.document
        ranks.append(rank)
    return ranks


async def endpoint(body: TeiRerankRequest, request: Request) -> JSONResponse:
    response, headers = await rerank(request, "tei", body, body.to_internal(request))
    headers["x-compute-tokens"] = str(response.usage.total_tokens)
    headers["x-compute-characters"] = str(len(body.query) + sum(len(text) for text in body.texts))
    return JSONResponse(render(response), headers=headers)


async def info(request: Request) -> dict[str, Any]:
    """What TEI clients read from ``/info``: the served model is a reranker, and the limits."""
    settings = request.app.state.settings
    name = default_model(request, None)
    spec = next((m for m in settings.models if m.name == name), None)
    entry = request.app.state.pool.entries.get(name)
    # The budget the loaded model's scheduler uses; before loading, what is configured (TEI's own default
    # when nothing is: the real one depends on the device the model will load on).
    budget = getattr(entry.scorer if entry else None, "max_batch_tokens", None)
    budget = budget or (spec.max_batch_tokens if spec else None) or settings.max_batch_tokens or 16384
    return {
        "model_id": name,
        "model_sha": None,
        "model_dtype": _DTYPE_NAMES.get(spec.dtype, spec.dtype) if spec else "float32",
        "model_type": {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}},
        "max_concurrent_requests": settings.max_queue_pairs,
        "max_input_length": (spec.max_length if spec and spec.max_length else 512),
        "max_batch_tokens": budget,
        "max_batch_requests": None,
        "max_client_batch_size": settings.max_documents,
        "auto_truncate": True,
        "tokenization_workers": 1,
        "version": rerankd.__version__,
        "sha": None,
        "docker_label": None,
    }


ROUTE: dict[str, Any] = {
    "response_model": list[TeiRank],
    "response_model_exclude_none": True,
    "dependencies": [Depends(require_key)],
    "summary": "Rerank (text-embeddings-inference format)",
    "responses": RERANK_ERRORS,
    "tags": ["rerank: tei"],
}
INFO_ROUTE: dict[str, Any] = {
    "dependencies": [Depends(require_key)],
    "summary": "Server info (text-embeddings-inference format)",
    "tags": ["rerank: tei"],
}

router = APIRouter()
router.add_api_route("/tei/rerank", endpoint, methods=["POST"], **ROUTE)
router.add_api_route("/tei/info", info, methods=["GET"], **INFO_ROUTE)
