"""The seed dialect: ``POST /v1/rerank`` as the seed gateways document it (also ``/seed/v1/rerank``).

Request ``{model, query, documents, top_n, retries}`` (documents as strings or ``{text}`` objects),
response ``{model, results: [{index, relevance_score, document}], usage, metadata}``.
Also takes SiliconFlow's ``max_chunks_per_doc`` / ``overlap_tokens`` for long documents.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rerankd.api.dialect import SPAN_DESCRIPTION, Dialect, DialectRequest, ResultSpan, TextDocument, ranked
from rerankd.types import RerankRequest, RerankResponse, ScoreOptions

__all__ = ["DIALECT", "SeedRerankRequest", "SeedRerankResponse"]

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


class SeedRerankRequest(DialectRequest):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [SEED_EXAMPLE]})

    model: str = Field(min_length=1, description="A model name from GET /v1/models.")
    query: str = Field(description="The search query.")
    documents: list[str | TextDocument] = Field(description="Texts to rank: strings or {text} objects.")
    top_n: int | None = Field(
        default=10, description="Return the N best; null, 0 or more than the list: all."
    )
    retries: int = Field(default=0, ge=0, description="Retries on transient failures (capped by the server).")
    return_documents: bool = Field(default=True, description="Echo each document's text in its result.")
    max_chunks_per_doc: int | None = Field(default=None, ge=1, description="Windows per long document.")
    overlap_tokens: int | None = Field(
        default=None, ge=0, description="Tokens shared by neighbouring windows."
    )

    def to_internal(self, default_model: str) -> RerankRequest:
        return self.internal(
            self.model,
            self.query,
            self.documents,
            self.top_n,
            self.return_documents,
            retries=self.retries,
            options=ScoreOptions(
                max_chunks_per_doc=self.max_chunks_per_doc, overlap_tokens=self.overlap_tokens
            ),
        )


class SeedResult(BaseModel):
    index: int = Field(description="Position of the document in the request's `documents`.")
    relevance_score: float
    document: str | None = Field(default=None, description="The document's text; absent unless requested.")
    span: ResultSpan | None = Field(default=None, description=SPAN_DESCRIPTION)


class SeedUsage(BaseModel):
    total_tokens: int
    query_tokens: int
    documents_tokens: int


class SeedAttempt(BaseModel):
    model: str
    ok: bool
    error: str | None = Field(default=None, description="Why this try failed.")


class SeedMetadata(BaseModel):
    served_by: str = Field(description="The model that answered: the one asked for, or a fallback.")
    attempts: list[SeedAttempt] = Field(description="Every try, in order, with why it failed.")


class SeedRerankResponse(BaseModel):
    model: str
    results: list[SeedResult]
    usage: SeedUsage
    metadata: SeedMetadata


def render(response: RerankResponse, body: SeedRerankRequest) -> SeedRerankResponse:
    return SeedRerankResponse(
        model=response.model,
        results=ranked(response, SeedResult),
        usage=SeedUsage(
            total_tokens=response.usage.total_tokens,
            query_tokens=response.usage.query_tokens,
            documents_tokens=response.usage.documents_tokens,
        ),
        metadata=SeedMetadata(
            served_by=response.model,
            attempts=[
                SeedAttempt(model=attempt.model, ok=attempt.error is None, error=attempt.error)
                for attempt in response.attempts
            ],
        ),
    )


DIALECT = Dialect(
    name="seed",
    request=SeedRerankRequest,
    response=SeedRerankResponse,
    render=render,
    paths=("/seed/v1/rerank",),
    summary="Rerank documents by relevance to a query (seed gateway format)",
    tag="rerank: seed",
)
