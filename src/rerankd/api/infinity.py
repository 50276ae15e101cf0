"""Infinity's rerank API (``/infinity/rerank``): ``{model, query, documents, top_n, return_documents,
raw_scores}``, answering ``{object: "rerank", results: [{index, relevance_score, document?}], model,
usage: {prompt_tokens, total_tokens}, id, created}`` with each document a plain string.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rerankd.api.common import (
    RERANK_ERRORS,
    DialectRequest,
    TextDocument,
    all_if_zero,
    default_model,
    require_key,
    rerank,
    text_of,
)
from rerankd.api.common import error_body as error_body
from rerankd.types import RerankRequest, RerankResponse, ScoreOptions

__all__ = ["InfinityRerankRequest", "endpoint", "error_body", "router"]


class InfinityRerankRequest(DialectRequest):
    query: str
    documents: list[str | TextDocument]
    model: str | None = Field(default=None, description="Default: the server's default model.")
    top_n: int | None = Field(default=None, description="The N best; absent, null, 0 or too many: all.")
    return_documents: bool = False

    def to_internal(self, request: Request) -> RerankRequest:
        return RerankRequest(
            model=default_model(request, self.model),
            query=self.query,
            documents=tuple(text_of(doc) for doc in self.documents),
            top_n=all_if_zero(self.top_n),
            return_documents=self.return_documents,
            raw_scores=self.raw_scores,
            options=ScoreOptions(instruction=self.instruction),
        )


class InfinityResult(BaseModel):
    index: int
    relevance_score: float
    document: str | None = None


class InfinityResponse(BaseModel):
    object: str = "rerank"
    results: list[InfinityResult]
    model: str
    usage: dict[str, int]
    id: str
    created: int


def render(response: RerankResponse) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for item in response.results:
        result: dict[str, Any] = {"index": item.index, "relevance_score": item.relevance_score}
        if item.document is not None:
            result["document"] = item.document
        results.append(result)
    tokens = response.usage.total_tokens
    return {
        "object": "rerank",
        "results": results,
        "model": response.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "id": f"infinity-{uuid.uuid4()}",
        "created": int(time.time()),
    }


async def endpoint(body: InfinityRerankRequest, request: Request) -> JSONResponse:
    response, headers = await rerank(request, "infinity", body, body.to_internal(request))
    return JSONResponse(render(response), headers=headers)


ROUTE: dict[str, Any] = {
    "response_model": InfinityResponse,
    "response_model_exclude_none": True,
    "dependencies": [Depends(require_key)],
    "summary": "Rerank (Infinity format)",
    "responses": RERANK_ERRORS,
    "tags": ["rerank: infinity"],
}

router = APIRouter()
router.add_api_route("/infinity/rerank", endpoint, methods=["POST"], **ROUTE)
