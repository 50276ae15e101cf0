"""Infinity's rerank API (``/infinity/rerank``): ``{model, query, documents, top_n, return_documents,
raw_scores}``, answering ``{object: "rerank", results: [{index, relevance_score, document?}], model,
usage: {prompt_tokens, total_tokens}, id, created}`` with each document a plain string.
"""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel, Field

from rerankd.api.dialect import SPAN_DESCRIPTION, Dialect, DialectRequest, ResultSpan, TextDocument, ranked
from rerankd.types import RerankRequest, RerankResponse

__all__ = ["DIALECT", "InfinityRerankRequest"]


class InfinityRerankRequest(DialectRequest):
    query: str
    documents: list[str | TextDocument]
    model: str | None = Field(default=None, description="Default: the server's default model.")
    top_n: int | None = Field(default=None, description="The N best; absent, null, 0 or too many: all.")
    return_documents: bool = False

    def to_internal(self, default_model: str) -> RerankRequest:
        return self.internal(
            self.model or default_model, self.query, self.documents, self.top_n, self.return_documents
        )


class InfinityResult(BaseModel):
    index: int
    relevance_score: float
    document: str | None = None
    span: ResultSpan | None = Field(default=None, description=SPAN_DESCRIPTION)


class InfinityUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class InfinityResponse(BaseModel):
    object: str = "rerank"
    results: list[InfinityResult]
    model: str
    usage: InfinityUsage
    id: str
    created: int


def render(response: RerankResponse, body: InfinityRerankRequest) -> InfinityResponse:
    tokens = response.usage.total_tokens
    return InfinityResponse(
        results=ranked(response, InfinityResult),
        model=response.model,
        usage=InfinityUsage(prompt_tokens=tokens, total_tokens=tokens),
        id=f"infinity-{uuid.uuid4()}",
        created=int(time.time()),
    )


DIALECT = Dialect(
    name="infinity",
    request=InfinityRerankRequest,
    response=InfinityResponse,
    render=render,
    paths=("/infinity/rerank",),
    summary="Rerank (Infinity format)",
    tag="rerank: infinity",
)
