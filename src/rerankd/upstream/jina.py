"""Jina's rerank API as an upstream: ``POST /v1/rerank``."""

from __future__ import annotations

from rerankd.upstream.wire import cohere_style

PROVIDER = cohere_style("/v1/rerank", extras={"return_documents": False})
