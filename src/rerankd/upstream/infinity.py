"""Infinity as an upstream: ``POST /rerank``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rerankd.types import ScoreOptions
from rerankd.upstream.wire import Parsed, Provider, field, scores_by_index, usage_tokens

PATH = "/rerank"


def build(model: str, query: str, documents: list[str], options: ScoreOptions) -> dict[str, Any]:
    return {
        "model": model,
        "query": query,
        "documents": documents,
        "top_n": len(documents),
        "return_documents": False,
    }


def parse(body: Any, headers: Mapping[str, str], count: int) -> Parsed:
    return Parsed(
        scores_by_index(field(body, "results"), count),
        total_tokens=usage_tokens(body, "usage", "total_tokens"),
    )


PROVIDER = Provider(path=PATH, build=build, parse=parse)
