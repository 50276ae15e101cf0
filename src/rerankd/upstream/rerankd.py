"""Another rerankd as an upstream: its seed dialect at ``/seed/v1/rerank`` (whatever its v1_dialect),
passing the long-document options and the instruction through; usage comes back exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rerankd.types import ScoreOptions
from rerankd.upstream.seed import parse as seed_parse
from rerankd.upstream.wire import Parsed, Provider

PATH = "/seed/v1/rerank"


def build(model: str, query: str, documents: list[str], options: ScoreOptions) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "query": query,
        "documents": documents,
        "top_n": None,
        "return_documents": False,
        "retries": 0,
    }
    extras = {
        "max_chunks_per_doc": options.max_chunks_per_doc,
        "overlap_tokens": options.overlap_tokens,
        "instruction": options.instruction,
    }
    body.update({key: value for key, value in extras.items() if value is not None})
    return body


def parse(body: Any, headers: Mapping[str, str], count: int) -> Parsed:
    return seed_parse(body, headers, count)


PROVIDER = Provider(path=PATH, build=build, parse=parse)
