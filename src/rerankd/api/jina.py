"""Jina's rerank API (``/jina/v1/rerank``): ``{model, query, documents, top_n, return_documents}``,
answering ``{model, usage: {total_tokens}, results: [{index, relevance_score, document: {text}}]}``.
Errors are ``{"detail": ...}``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from rerankd.api.dialect import (
    SPAN_DESCRIPTION,
    Dialect,
    DialectRequest,
    ResultSpan,
    TextDocument,
    all_if_zero,
    span_of,
    text_of,
)
from rerankd.types import RerankRequest, RerankResponse, ScoreOptions

__all__ = ["DIALECT", "JinaRerankRequest"]


class JinaRerankRequest(DialectRequest):
    model: str = Field(min_length=1)
    query: str | TextDocument
    documents: list[str | TextDocument]
    top_n: int | None = Field(default=None, description="The N best; absent, null, 0 or too many: all.")
    return_documents: bool = True

    def to_internal(self, default_model: str) -> RerankRequest:
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
    span: ResultSpan | None = Field(default=None, description=SPAN_DESCRIPTION)


class JinaUsage(BaseModel):
    total_tokens: int


class JinaResponse(BaseModel):
    model: str
    usage: JinaUsage
    results: list[JinaResult]


def render(response: RerankResponse, body: JinaRerankRequest) -> JinaResponse:
    return JinaResponse(
        model=response.model,
        usage=JinaUsage(total_tokens=response.usage.total_tokens),
        results=[
            JinaResult(
                index=item.index,
                relevance_score=item.relevance_score,
                document=None if item.document is None else TextDocument(text=item.document),
                span=span_of(item),
            )
            for item in response.results
        ],
    )


DIALECT = Dialect(
    name="jina",
    request=JinaRerankRequest,
    response=JinaResponse,
    render=render,
    paths=("/jina/v1/rerank",),
    summary="Rerank (Jina format)",
    tag="rerank: jina",
    errors="detail",
)
