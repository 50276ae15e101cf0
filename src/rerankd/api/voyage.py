"""Voyage AI's rerank API (``/voyage/v1/rerank``): ``{query, documents, model, top_k, return_documents,
truncation}``, answering ``{object: "list", data: [{index, relevance_score, document?}], model, usage}``.
``truncation: false`` refuses documents longer than the model's window (422), as Voyage does;
``true`` (the default) fits them the model's configured way. Errors are ``{"detail": ...}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rerankd.api.common import RERANK_ERRORS, DialectRequest, all_if_zero, require_key, rerank
from rerankd.api.jina import error_body as error_body
from rerankd.types import RerankRequest, RerankResponse, ScoreOptions

__all__ = ["VoyageRerankRequest", "endpoint", "error_body", "router"]


class VoyageRerankRequest(DialectRequest):
    query: str
    documents: list[str]
    model: str = Field(min_length=1)
    top_k: int | None = Field(default=None, description="The K best; null, 0 or too many: all.")
    return_documents: bool = False
    truncation: bool = True

    def to_internal(self) -> RerankRequest:
        return RerankRequest(
            model=self.model,
            query=self.query,
            documents=tuple(self.documents),
            top_n=all_if_zero(self.top_k),
            return_documents=self.return_documents,
            raw_scores=self.raw_scores,
            options=ScoreOptions(
                long_documents=None if self.truncation else "error", instruction=self.instruction
            ),
        )


class VoyageResult(BaseModel):
    index: int
    relevance_score: float
    document: str | None = None


class VoyageResponse(BaseModel):
    object: str = "list"
    data: list[VoyageResult]
    model: str
    usage: dict[str, int]


def render(response: RerankResponse) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    for item in response.results:
        result: dict[str, Any] = {"index": item.index, "relevance_score": item.relevance_score}
        if item.document is not None:
            result["document"] = item.document
        data.append(result)
    return {
        "object": "list",
        "data": data,
        "model": response.model,
        "usage": {"total_tokens": response.usage.total_tokens},
    }


async def endpoint(body: VoyageRerankRequest, request: Request) -> JSONResponse:
    response, headers = await rerank(request, "voyage", body, body.to_internal())
    return JSONResponse(render(response), headers=headers)


ROUTE: dict[str, Any] = {
    "response_model": VoyageResponse,
    "response_model_exclude_none": True,
    "dependencies": [Depends(require_key)],
    "summary": "Rerank (Voyage AI format)",
    "responses": RERANK_ERRORS,
    "tags": ["rerank: voyage"],
}

router = APIRouter()
router.add_api_route("/voyage/v1/rerank", endpoint, methods=["POST"], **ROUTE)
