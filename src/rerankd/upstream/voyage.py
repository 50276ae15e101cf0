"""Voyage AI's rerank API as an upstream: ``POST /v1/rerank`` (``top_k``, answers in ``data``)."""

from __future__ import annotations

from rerankd.upstream.wire import cohere_style

PROVIDER = cohere_style(
    "/v1/rerank",
    top_field="top_k",
    results_field="data",
    truncation_field="truncation",
    extras={"return_documents": False},
)
