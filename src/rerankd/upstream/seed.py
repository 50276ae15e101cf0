"""A seed-style gateway (the API of ``../shared/seeds``) as an upstream: ``POST /v1/rerank``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rerankd.types import ScoreOptions
from rerankd.upstream.wire import Parsed, Provider, field, scores_by_index, usage_tokens

PATH = "/v1/rerank"


def build(model: str, query: str, documents: list[str], options: ScoreOptions) -> dict[str, Any]:
    # Retries are ours to make (with backoff and fallbacks), so the gateway is asked for none.
    return {"model": model, "query": query, "documents": documents, "top_n": len(documents), "retries": 0}


def parse(body: Any, headers: Mapping[str, str], count: int) -> Parsed:
    scores = scores_by_index(field(body, "results"), count)
    return Parsed(
        scores,
        total_tokens=usage_tokens(body, "usage", "total_tokens"),
        query_tokens=usage_tokens(body, "usage", "query_tokens"),
    )


PROVIDER = Provider(path=PATH, build=build, parse=parse)
