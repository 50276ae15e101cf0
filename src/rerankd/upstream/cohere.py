"""Cohere's v2 rerank API as an upstream: ``POST /v2/rerank``; billed tokens in ``meta.tokens``."""

from __future__ import annotations

from rerankd.upstream.wire import cohere_style

PROVIDER = cohere_style(
    "/v2/rerank", usage=("meta", "tokens", "input_tokens"), max_tokens_field="max_tokens_per_doc"
)
