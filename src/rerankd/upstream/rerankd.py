"""Another rerankd as an upstream: its seed dialect at ``/seed/v1/rerank`` (whatever its v1_dialect),
passing the long-document options and the instruction through; usage comes back exact.
"""

from __future__ import annotations

from typing import Any

from rerankd.types import ScoreOptions
from rerankd.upstream import seed
from rerankd.upstream.wire import Provider

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


# It answers as a seed gateway does, with the usage split exactly.
PROVIDER = Provider(path=PATH, build=build, parse=seed.PROVIDER.parse)
