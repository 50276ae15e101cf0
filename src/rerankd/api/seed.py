"""The seed dialect: ``POST /v1/rerank`` as the seed gateways document it.

Request ``{model, query, documents, top_n, retries}`` (documents as strings or ``{text}`` objects),
response ``{model, results: [{index, relevance_score, document}], usage, metadata}``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from rerankd.api.common import (
    ServiceDep,
    cancel_on_disconnect,
    log_unknown_fields,
    require_key,
    timing_headers,
)
from rerankd.types import RerankRequest, RerankResponse

__all__ = ["SeedRerankRequest", "SeedRerankResponse", "router"]

SEED_EXAMPLE: dict[str, Any] = {
    "model": "rerank-multilingual-v3.0",
    "query": "What is the capital of the United States?",
    "top_n": 3,
    "documents": [
        "Carson City is the capital city of the American state of Nevada.",
        "Washington, D.C. is the capital of the United States. It is a federal district.",
        "Capitalization in English grammar is the use of a capital letter at the start of a word.",
    ],
    "retries": 0,
}


class TextDocument(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str


class SeedRerankRequest(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [SEED_EXAMPLE]})

    model: str = Field(min_length=1, description="A model name from GET /v1/models.")
    query: str = Field(description="The search query.")
    documents: list[str | TextDocument] = Field(description="Texts to rank: strings or {text} objects.")
    top_n: int | None = Field(
        default=10, description="Return the N best; null, 0 or more than the list: all."
    )
    retries: int = Field(default=0, ge=0, description="Retries on transient failures (capped by the server).")
    return_documents: bool = Field(default=True, description="Echo each document's text in its result.")
    raw_scores: bool = Field(default=False, description="Skip the sigmoid of one-label cross-encoders.")

    def to_internal(self) -> RerankRequest:
        return RerankRequest(
            model=self.model,
            query=self.query,
            documents=tuple(doc if isinstance(doc, str) else doc.text for doc in self.documents),
            top_n=self.top_n,
            return_documents=self.return_documents,
            raw_scores=self.raw_scores,
            retries=self.retries,
        )


class SeedResult(BaseModel):
    index: int = Field(description="Position of the document in the request's `documents`.")
    relevance_score: float
    document: str | None = Field(default=None, description="The document's text; absent unless requested.")


class SeedUsage(BaseModel):
    total_tokens: int
    query_tokens: int
    documents_tokens: int


class SeedRerankResponse(BaseModel):
    model: str
    results: list[SeedResult]
    usage: SeedUsage
    metadata: dict[str, Any] = Field(default_factory=dict)


def render(response: RerankResponse) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for item in response.results:
        result: dict[str, Any] = {"index": item.index, "relevance_score": item.relevance_score}
        if item.document is not None:
            result["document"] = item.document
        results.append(result)
    return {
        "model": response.model,
        "results": results,
        "usage": {
            "total_tokens": response.usage.total_tokens,
            "query_tokens": response.usage.query_tokens,
            "documents_tokens": response.usage.documents_tokens,
        },
        "metadata": {"attempts": response.attempts},
    }


router = APIRouter(tags=["rerank"])


@router.post(
    "/v1/rerank",
    response_model=SeedRerankResponse,
    dependencies=[Depends(require_key)],
    summary="Rerank documents by relevance to a query (seed format)",
    responses={
        401: {"description": "Missing or wrong API key"},
        404: {"description": "Unknown model (the message lists the available ones)"},
        413: {"description": "Too many documents or body too large"},
        422: {"description": "Invalid input (the message says which field)"},
        429: {"description": "Model overloaded; see Retry-After"},
        503: {"description": "Model cannot be loaded (the message says how to fix it)"},
    },
)
async def rerank(body: SeedRerankRequest, request: Request, svc: ServiceDep) -> JSONResponse:
    began = time.perf_counter()
    log_unknown_fields(request, "seed", body)
    response: RerankResponse = await cancel_on_disconnect(request, svc.rerank(body.to_internal()))
    return JSONResponse(render(response), headers=timing_headers(response.timings, began))
