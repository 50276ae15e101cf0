"""vLLM's rerank API (``/vllm/rerank``, ``/vllm/v1/rerank``, ``/vllm/v2/rerank``; bare ``/rerank`` when
the body has no ``texts``): ``{model, query, documents, top_n, truncate_prompt_tokens}``, answering
``{id, model, usage: {prompt_tokens, total_tokens}, results: [{index, document: {text}, relevance_score}]}``.
``truncate_prompt_tokens: N`` cuts each document to N tokens (vLLM cuts the whole prompt).
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from rerankd.api.dialect import SPAN_DESCRIPTION, Dialect, DialectRequest, ResultSpan, TextDocument, ranked
from rerankd.types import RerankRequest, RerankResponse, ScoreOptions

__all__ = ["DIALECT", "VllmRerankRequest"]


class VllmRerankRequest(DialectRequest):
    model: str | None = Field(default=None, description="Default: the server's default model.")
    query: str | TextDocument
    documents: list[str | TextDocument]
    top_n: int | None = Field(default=None, description="The N best; absent, null, 0 or too many: all.")
    truncate_prompt_tokens: int | None = Field(default=None, ge=1)
    return_documents: bool = True

    def to_internal(self, default_model: str) -> RerankRequest:
        limit = self.truncate_prompt_tokens
        return self.internal(
            self.model or default_model,
            self.query,
            self.documents,
            self.top_n,
            self.return_documents,
            options=ScoreOptions(long_documents="truncate_end" if limit else None, max_tokens_per_doc=limit),
        )


class VllmResult(BaseModel):
    index: int
    document: TextDocument | None = None
    relevance_score: float
    span: ResultSpan | None = Field(default=None, description=SPAN_DESCRIPTION)


class VllmUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class VllmResponse(BaseModel):
    id: str
    model: str
    usage: VllmUsage
    results: list[VllmResult]


def render(response: RerankResponse, body: VllmRerankRequest) -> VllmResponse:
    tokens = response.usage.total_tokens
    return VllmResponse(
        id=f"rerank-{uuid.uuid4().hex}",
        model=response.model,
        usage=VllmUsage(prompt_tokens=tokens, total_tokens=tokens),
        results=ranked(response, VllmResult, lambda text, _: TextDocument(text=text)),
    )


DIALECT = Dialect(
    name="vllm",
    request=VllmRerankRequest,
    response=VllmResponse,
    render=render,
    paths=("/vllm/rerank", "/vllm/v1/rerank", "/vllm/v2/rerank"),
    summary="Rerank (vLLM format)",
    tag="rerank: vllm",
)
