"""Jina's rerank API (``/jina/v1/rerank``): ``{model, query, documents, top_n, return_documents}``,
answering ``{model, usage: {total_tokens}, results: [{index, relevance_score, document: {text}}]}``.
Errors are ``{"detail": ...}``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from rerankd.api.dialect import SPAN_DESCRIPTION, Dialect, DialectRequest, ResultSpan, TextDocument, ranked
from rerankd.types import RerankRequest, RerankResponse

__all__ = ["DIALECT", "JinaRerankRequest"]


class JinaRerankRequest(DialectRequest):
    model: str = Field(min_length=1)
    query: str | TextDocument
    documents: list[str | TextDocument]
    top_n: int | None = Field(default=None, description="The N best; absent, null, 0 or too many: all.")
    return_documents: bool = True

    def to_internal(self, default_model: str) -> RerankRequest:
        return self.internal(self.model, self.query, self.documents, self.top_n, self.return_documents)


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
        results=ranked(response, JinaResult, lambda text, _: TextDocument(text=text)),
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
