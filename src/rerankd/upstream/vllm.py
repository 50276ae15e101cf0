"""vLLM's rerank API as an upstream: ``POST /v1/rerank``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rerankd.types import ScoreOptions
from rerankd.upstream.wire import Parsed, Provider, field, scores_by_index, usage_tokens

PATH = "/v1/rerank"


def build(model: str, query: str, documents: list[str], options: ScoreOptions) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "query": query, "documents": documents, "top_n": len(documents)}
    if options.max_tokens_per_doc:
        body["truncate_prompt_tokens"] = options.max_tokens_per_doc
    return body


def parse(body: Any, headers: Mapping[str, str], count: int) -> Parsed:
    return Parsed(
        scores_by_index(field(body, "results"), count),
        total_tokens=usage_tokens(body, "usage", "total_tokens"),
    )


PROVIDER = Provider(path=PATH, build=build, parse=parse)
