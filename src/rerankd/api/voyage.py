"""Voyage AI's rerank API (``/voyage/v1/rerank``): ``{query, documents, model, top_k, return_documents,
truncation}``, answering ``{object: "list", data: [{index, relevance_score, document?}], model, usage}``.
``truncation: false`` refuses documents longer than the model's window (422), as Voyage does;
``true`` (the default) fits them the model's configured way. Errors are ``{"detail": ...}``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from rerankd.api.dialect import SPAN_DESCRIPTION, Dialect, DialectRequest, ResultSpan, ranked
from rerankd.types import RerankRequest, RerankResponse, ScoreOptions

__all__ = ["DIALECT", "VoyageRerankRequest"]


class VoyageRerankRequest(DialectRequest):
    query: str
    documents: list[str]
    model: str = Field(min_length=1)
    top_k: int | None = Field(default=None, description="The K best; null, 0 or too many: all.")
    return_documents: bool = False
    truncation: bool = True

    def to_internal(self, default_model: str) -> RerankRequest:
        return self.internal(
            self.model,
            self.query,
            self.documents,
            self.top_k,
            self.return_documents,
            options=ScoreOptions(long_documents=None if self.truncation else "error"),
        )


class VoyageResult(BaseModel):
    index: int
    relevance_score: float
    document: str | None = None
    span: ResultSpan | None = Field(default=None, description=SPAN_DESCRIPTION)


class VoyageUsage(BaseModel):
    total_tokens: int


class VoyageResponse(BaseModel):
    object: str = "list"
    data: list[VoyageResult]
    model: str
    usage: VoyageUsage


def render(response: RerankResponse, body: VoyageRerankRequest) -> VoyageResponse:
    return VoyageResponse(
        data=ranked(response, VoyageResult),
        model=response.model,
        usage=VoyageUsage(total_tokens=response.usage.total_tokens),
    )


DIALECT = Dialect(
    name="voyage",
    request=VoyageRerankRequest,
    response=VoyageResponse,
    render=render,
    paths=("/voyage/v1/rerank",),
    summary="Rerank (Voyage AI format)",
    tag="rerank: voyage",
    errors="detail",
)
