"""text-embeddings-inference as an upstream: ``POST /rerank`` with ``texts``; a bare list with ``score``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rerankd.types import ScoreOptions
from rerankd.upstream.wire import Parsed, Provider, scores_by_index

PATH = "/rerank"


def build(model: str, query: str, documents: list[str], options: ScoreOptions) -> dict[str, Any]:
    # TEI serves one model (no `model` field) and refuses long texts unless asked to truncate.
    return {"query": query, "texts": documents, "raw_scores": False, "return_text": False, "truncate": True}


def parse(body: Any, headers: Mapping[str, str], count: int) -> Parsed:
    tokens = headers.get("x-compute-tokens", "")
    return Parsed(
        scores_by_index(body, count, "score"), total_tokens=int(tokens) if tokens.isdigit() else None
    )


PROVIDER = Provider(path=PATH, build=build, parse=parse)
