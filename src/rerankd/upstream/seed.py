"""A seed-style gateway (the API of ``../shared/seeds``) as an upstream: ``POST /v1/rerank``; it reports
the query's share of the usage."""

from __future__ import annotations

from rerankd.upstream.wire import cohere_style

# Retries are ours to make (with backoff and fallbacks), so the gateway is asked for none.
PROVIDER = cohere_style("/v1/rerank", query_usage=("usage", "query_tokens"), extras={"retries": 0})
