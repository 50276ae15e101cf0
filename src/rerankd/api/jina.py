"""Jina's rerank API (``/jina/v1/rerank``): ``{model, query, documents, top_n, return_documents}``,
answering ``{model, usage: {total_tokens}, results: [{index, relevance_score, document: {text}}]}``.
Errors are ``{"detail": ...}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rerankd.api.common import (
    RERANK_ERRORS,
    DialectRequest,
    TextDocument,
    all_if_zero,
    require_key,
    rerank,
    text_of,
)
from rerankd.errors import RerankdError
from rerankd.types import RerankRequest, RerankResponse, ScoreOptions

__all__ = ["JinaRerankRequest", "endpoint", "error_body", "router"]


def error_body(exc: RerankdError) -> dict[str, Any]:
    return {"detail": exc.message}


class JinaRerankRequest(DialectRequest):
    model: str = Field(min_length=1)
    query: str | TextDocument
    documents: list[str | TextDocument]
    top_n: int | None = Field(default=None, description="The N best; absent, null, 0 or too many: all.")
    return_documents: bool = True

    def to_internal(self) -> RerankRequest:
        return RerankRequest(
            model=self.model,
            query=text_of(self.query),
            documents=tuple(text_of(doc) for doc in self.documents),
            top_n=all_if_zero(self.top_n),
            return_documents=self.return_documents,
            raw_scores=self.raw_scores,
            options=ScoreOptions(instruction=self.instruction),
        )


class JinaResult(BaseModel):
    index: int
    relevance_score: float
    document: TextDocument | None = None


class JinaResponse(BaseModel):
    model: str
    usage: dict[str, int]
    results: list[JinaResult]


def render(response: RerankResponse) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for item in response.results:
        result: dict[str, Any] = {"index": item.index, "relevance_score": item.relevance_score}
        if item.document is not None:
            result["document"] = {"text": item.document}
        results.append(result)
    return {
        "model": response.model,
        "usage": {"total_tokens": response.usage.total_tokens},
        "results": results,
    }


async def endpoint(body: JinaRerankRequest, request: Request) -> JSONResponse:
    response, headers = await rerank(request, "jina", body, body.to_internal())
    return JSONResponse(render(response), headers=headers)


ROUTE: dict[str, Any] = {
    "response_model": JinaResponse,
    "response_model_exclude_none": True,
    "dependencies": [Depends(require_key)],
    "summary": "Rerank (Jina format)",
    "responses": RERANK_ERRORS,
    "tags": ["rerank: jina"],
}

router = APIRouter()
router.add_api_route("/jina/v1/rerank", endpoint, methods=["POST"], **ROUTE)
