"""Infinity as an upstream: ``POST /rerank``."""

from __future__ import annotations

from rerankd.upstream.wire import cohere_style

PROVIDER = cohere_style("/rerank", extras={"return_documents": False})
