"""vLLM's rerank API as an upstream: ``POST /v1/rerank`` (``truncate_prompt_tokens`` cuts documents)."""

from __future__ import annotations

from rerankd.upstream.wire import cohere_style

PROVIDER = cohere_style("/v1/rerank", max_tokens_field="truncate_prompt_tokens")
