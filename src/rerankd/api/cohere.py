"""Cohere's rerank API: v1 (``/cohere/v1/rerank``) and v2 (``/cohere/v2/rerank``, bare ``/v2/rerank``).

v1 takes strings or objects ranked on ``rank_fields`` (default ``["text"]``), ``return_documents``
(default false) and ``max_chunks_per_doc``; v2 takes strings and ``max_tokens_per_doc``. Both answer
``{id, results: [{index, relevance_score, document?}], meta}`` with ``meta.billed_units.search_units``
(one unit per query per 100 documents scored, chunks counted as documents) and SiliconFlow-style
``meta.tokens``. Errors are ``{"message": ...}``, as Cohere's SDK reads them.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from rerankd.api.dialect import SPAN_DESCRIPTION, Dialect, DialectRequest, ResultSpan, ranked
from rerankd.errors import InvalidRequest
from rerankd.types import RerankRequest, RerankResponse, ScoreOptions

__all__ = ["V1", "V2", "CohereV1Request", "CohereV2Request"]

Document = str | dict[str, Any]


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

    def to_internal(self, default_model: str) -> RerankRequest:
        return self.internal(
            self.model or default_model,
            self.query,
            [document_text(doc, i, self.rank_fields) for i, doc in enumerate(self.documents)],
            self.top_n,
            self.return_documents,
            options=ScoreOptions(
                max_chunks_per_doc=self.max_chunks_per_doc, overlap_tokens=self.overlap_tokens
            ),
        )


class CohereV2Request(DialectRequest):
    model: str = Field(min_length=1)
    query: str
    documents: list[Document] = Field(description="Strings (objects with `text` are accepted too).")
    top_n: int | None = Field(default=None, description="The N best; absent, null, 0 or too many: all.")
    max_tokens_per_doc: int | None = Field(default=None, ge=1, description="Cut each document to N tokens.")
    return_documents: bool = False

    def to_internal(self, default_model: str) -> RerankRequest:
        return self.internal(
            self.model,
            self.query,
            [document_text(doc, i, None) for i, doc in enumerate(self.documents)],
            self.top_n,
            self.return_documents,
            options=ScoreOptions(max_tokens_per_doc=self.max_tokens_per_doc),
        )


class CohereResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, Any] | None = None
    span: ResultSpan | None = Field(default=None, description=SPAN_DESCRIPTION)


class CohereApiVersion(BaseModel):
    version: str


class CohereBilledUnits(BaseModel):
    search_units: int = Field(description="One per query per 100 documents scored, chunks counted.")


class CohereTokens(BaseModel):
    input_tokens: int
    output_tokens: int


class CohereMeta(BaseModel):
    api_version: CohereApiVersion
    billed_units: CohereBilledUnits
    tokens: CohereTokens


class CohereResponse(BaseModel):
    id: str
    results: list[CohereResult]
    meta: CohereMeta


def render(response: RerankResponse, documents: list[Document], version: str) -> CohereResponse:
    def echoed(text: str, index: int) -> dict[str, Any]:
        """The document as the client sent it (an object with all its fields), a string as ``{text}``."""
        original = documents[index]
        return {"text": original} if isinstance(original, str) else original

    return CohereResponse(
        id=str(uuid.uuid4()),
        results=ranked(response, CohereResult, echoed),
        meta=CohereMeta(
            api_version=CohereApiVersion(version=version),
            billed_units=CohereBilledUnits(search_units=response.search_units),
            tokens=CohereTokens(input_tokens=response.usage.total_tokens, output_tokens=0),
        ),
    )


def _dialect(name: str, request: type[CohereV1Request] | type[CohereV2Request], version: str) -> Dialect[Any]:
    return Dialect(
        name=name,
        request=request,
        response=CohereResponse,
        render=lambda response, body: render(response, body.documents, version),
        paths=(f"/cohere/v{version}/rerank",),
        summary=f"Rerank (Cohere v{version} format)",
        tag="rerank: cohere",
        errors="message",
    )


V1 = _dialect("cohere", CohereV1Request, "1")
V2 = _dialect("cohere-v2", CohereV2Request, "2")
