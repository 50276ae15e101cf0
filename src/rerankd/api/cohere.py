"""Cohere's rerank API: v1 (``/cohere/v1/rerank``) and v2 (``/cohere/v2/rerank``, bare ``/v2/rerank``).

v1 takes strings or objects ranked on ``rank_fields`` (default ``["text"]``), ``return_documents``
(default false) and ``max_chunks_per_doc``; v2 takes strings and ``max_tokens_per_doc``. Both answer
``{id, results: [{index, relevance_score, document?}], meta}`` with ``meta.billed_units.search_units``
(one unit per query per 100 documents scored, chunks counted as documents) and SiliconFlow-style
``meta.tokens``. Errors are ``{"message": ...}``, as Cohere's SDK reads them.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rerankd.api.common import RERANK_ERRORS, DialectRequest, all_if_zero, default_model, require_key, rerank
from rerankd.errors import InvalidRequest, RerankdError
from rerankd.types import RerankRequest, RerankResponse, ScoreOptions

__all__ = ["CohereV1Request", "CohereV2Request", "error_body", "router", "v1_endpoint", "v2_endpoint"]

Document = str | dict[str, Any]


def error_body(exc: RerankdError) -> dict[str, Any]:
    return {"message": exc.message}


def document_text(document: Document, index: int, rank_fields: list[str] | None) -> str:
    """A string as is; an object as its ``rank_fields`` in order, ``field: value`` per line."""
    if isinstance(document, str):
        return document
    fields = rank_fields or ["text"]
    present = [field for field in fields if field in document]
    if not present:
        raise InvalidRequest(
            f"documents.{index} has none of the rank_fields {fields}; add them or send a string"
        )
    if present == ["text"] and not rank_fields:
        return str(document["text"])
    return "\n".join(f"{field}: {document[field]}" for field in present)


class CohereV1Request(DialectRequest):
    model: str | None = Field(default=None, description="Model name; default: the server's default model.")
    query: str
    documents: list[Document] = Field(description="Strings, or objects ranked on `rank_fields`.")
    top_n: int | None = Field(default=None, description="The N best; absent, null, 0 or too many: all.")
    rank_fields: list[str] | None = Field(
        default=None, description='Object fields to rank on; default ["text"].'
    )
    return_documents: bool = False
    max_chunks_per_doc: int | None = Field(
        default=None, ge=1, description="Windows scored per long document."
    )
    overlap_tokens: int | None = Field(default=None, ge=0)

    def to_internal(self, request: Request) -> RerankRequest:
        return RerankRequest(
            model=default_model(request, self.model),
            query=self.query,
            documents=tuple(document_text(doc, i, self.rank_fields) for i, doc in enumerate(self.documents)),
            top_n=all_if_zero(self.top_n),
            return_documents=self.return_documents,
            raw_scores=self.raw_scores,
            options=ScoreOptions(
                instruction=self.instruction,
                max_chunks_per_doc=self.max_chunks_per_doc,
                overlap_tokens=self.overlap_tokens,
            ),
        )


class CohereV2Request(DialectRequest):
    model: str = Field(min_length=1)
    query: str
    documents: list[Document] = Field(description="Strings (objects with `text` are accepted too).")
    top_n: int | None = Field(default=None, description="The N best; absent, null, 0 or too many: all.")
    max_tokens_per_doc: int | None = Field(default=None, ge=1, description="Cut each document to N tokens.")
    return_documents: bool = False

    def to_internal(self) -> RerankRequest:
        return RerankRequest(
            model=self.model,
            query=self.query,
            documents=tuple(document_text(doc, i, None) for i, doc in enumerate(self.documents)),
            top_n=all_if_zero(self.top_n),
            return_documents=self.return_documents,
            raw_scores=self.raw_scores,
            options=ScoreOptions(max_tokens_per_doc=self.max_tokens_per_doc, instruction=self.instruction),
        )


class CohereResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, Any] | None = None


class CohereResponse(BaseModel):
    id: str
    results: list[CohereResult]
    meta: dict[str, Any]


def render(response: RerankResponse, documents: list[Document], version: str) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for item in response.results:
        result: dict[str, Any] = {"index": item.index, "relevance_score": item.relevance_score}
        if item.document is not None:
            original = documents[item.index]
            result["document"] = {"text": original} if isinstance(original, str) else original
        results.append(result)
    return {
        "id": str(uuid.uuid4()),
        "results": results,
        "meta": {
            "api_version": {"version": version},
            "billed_units": {"search_units": max(1, math.ceil(response.scored_documents / 100))},
            "tokens": {"input_tokens": response.usage.total_tokens, "output_tokens": 0},
        },
    }


async def v1_endpoint(body: CohereV1Request, request: Request) -> JSONResponse:
    response, headers = await rerank(request, "cohere-v1", body, body.to_internal(request))
    return JSONResponse(render(response, body.documents, "1"), headers=headers)


async def v2_endpoint(body: CohereV2Request, request: Request) -> JSONResponse:
    response, headers = await rerank(request, "cohere-v2", body, body.to_internal())
    return JSONResponse(render(response, body.documents, "2"), headers=headers)


ROUTE: dict[str, Any] = {
    "response_model": CohereResponse,
    "response_model_exclude_none": True,
    "dependencies": [Depends(require_key)],
    "responses": RERANK_ERRORS,
    "tags": ["rerank: cohere"],
}
V1_ROUTE = {**ROUTE, "summary": "Rerank (Cohere v1 format)"}
V2_ROUTE = {**ROUTE, "summary": "Rerank (Cohere v2 format)"}

router = APIRouter()
router.add_api_route("/cohere/v1/rerank", v1_endpoint, methods=["POST"], **V1_ROUTE)
router.add_api_route("/cohere/v2/rerank", v2_endpoint, methods=["POST"], **V2_ROUTE)
