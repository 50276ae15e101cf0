"""vLLM's rerank API (``/vllm/rerank``, ``/vllm/v1/rerank``, ``/vllm/v2/rerank``; bare ``/rerank`` when
the body has no ``texts``): ``{model, query, documents, top_n, truncate_prompt_tokens}``, answering
``{id, model, usage: {prompt_tokens, total_tokens}, results: [{index, document: {text}, relevance_score}]}``.
``truncate_prompt_tokens: N`` cuts each document to N tokens (vLLM cuts the whole prompt).
"""

from __future__ import annotations

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

__all__ = ["PATHS", "VllmRerankRequest", "endpoint", "error_body", "router"]


class VllmRerankRequest(DialectRequest):
    model: str | None = Field(default=None, description="Default: the server's default model.")
    query: str | TextDocument
    documents: list[str | TextDocument]
    top_n: int | None = Field(default=None, description="The N best; absent, null, 0 or too many: all.")
    truncate_prompt_tokens: int | None = Field(default=None, ge=1)
    return_documents: bool = True

    def to_internal(self, request: Request) -> RerankRequest:
        limit = self.truncate_prompt_tokens
        return RerankRequest(
            model=default_model(request, self.model),
            query=text_of(self.query),
            documents=tuple(text_of(doc) for doc in self.documents),
            top_n=all_if_zero(self.top_n),
            return_documents=self.return_documents,
            raw_scores=self.raw_scores,
            options=ScoreOptions(
                long_documents="truncate_end" if limit else None,
                max_tokens_per_doc=limit,
                instruction=self.instruction,
            ),
        )


class VllmResult(BaseModel):
    index: int
    document: TextDocument | None = None
    relevance_score: float


class VllmResponse(BaseModel):
    id: str
    model: str
    usage: dict[str, int]
    results: list[VllmResult]


def render(response: RerankResponse) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for item in response.results:
        result: dict[str, Any] = {"index": item.index}
        if item.document is not None:
            result["document"] = {"text": item.document}
        result["relevance_score"] = item.relevance_score
        results.append(result)
    tokens = response.usage.total_tokens
    return {
        "id": f"rerank-{uuid.uuid4().hex}",
        "model": response.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "results": results,
    }


async def endpoint(body: VllmRerankRequest, request: Request) -> JSONResponse:
    response, headers = await rerank(request, "vllm", body, body.to_internal(request))
    return JSONResponse(render(response), headers=headers)


ROUTE: dict[str, Any] = {
    "response_model": VllmResponse,
    "response_model_exclude_none": True,
    "dependencies": [Depends(require_key)],
    "summary": "Rerank (vLLM format)",
    "responses": RERANK_ERRORS,
    "tags": ["rerank: vllm"],
}
PATHS = ("/vllm/rerank", "/vllm/v1/rerank", "/vllm/v2/rerank")

router = APIRouter()
for _path in PATHS:
    router.add_api_route(_path, endpoint, methods=["POST"], **ROUTE)
