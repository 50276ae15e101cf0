"""Shared pieces of the provider adapters: the :class:`Provider` record each adapter module declares,
the parsed result, reading ``[{index, score}]`` lists strictly (an upstream that answers with the
wrong shape is an error, never a silent mis-ranking), and :func:`cohere_style`, the record of the many
APIs shaped like Cohere's, which differ only in data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rerankd.errors import UpstreamError
from rerankd.redaction import redact
from rerankd.types import ScoreOptions

__all__ = ["Parsed", "Provider", "cohere_style", "field", "scores_by_index", "usage_tokens"]


@dataclass(frozen=True, slots=True)
class Parsed:
    scores: list[float]  # one per document, in request order
    total_tokens: int | None = None  # what the upstream billed, when it says
    query_tokens: int | None = None  # the split, when the upstream reports it (rerankd does)


@dataclass(frozen=True, slots=True)
class Provider:
    """One upstream rerank API: where to post, and two pure functions to write the request and read
    the answer (tested without a network). The shared sender (``base.UpstreamScorer``) does the rest."""

    path: str
    # (upstream model name, query, documents, options) -> the JSON body to post
    build: Callable[[str, str, list[str], ScoreOptions], dict[str, Any]]
    # (the answer's JSON, its headers, how many documents were sent) -> one score per document
    parse: Callable[[Any, Mapping[str, str], int], Parsed]


def field(body: Any, *path: str) -> Any:
    """``body[path[0]][path[1]]...``, or an UpstreamError naming what is missing."""
    value = body
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            raise UpstreamError(f"upstream answer has no `{'.'.join(path)}`; its API may have changed")
        value = value[key]
    return value


def _shown(value: Any) -> str:
    """A value of the upstream's answer, as an error message quotes it: short, and redacted (an upstream
    may put anything there, our key included)."""
    return redact(repr(value))[:60]


def scores_by_index(items: Any, count: int, score_key: str = "relevance_score") -> list[float]:
    """Scores in request order from a list of ``{index, <score_key>}``; every document exactly once."""
    if not isinstance(items, list):
        raise UpstreamError("upstream answer's results are not a list")
    scores: list[float | None] = [None] * count
    for item in items:
        index = item.get("index") if isinstance(item, Mapping) else None
        score = item.get(score_key) if isinstance(item, Mapping) else None
        if not isinstance(index, int) or not 0 <= index < count or scores[index] is not None:
            raise UpstreamError(
                f"upstream answer has a bad or repeated index {_shown(index)} (documents: {count})"
            )
        if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
            raise UpstreamError(f"upstream answer has a bad {score_key} {_shown(score)} for document {index}")
        scores[index] = float(score)
    missing = [i for i, score in enumerate(scores) if score is None]
    if missing:
        raise UpstreamError(f"upstream answer left out documents {missing[:5]}; asked for all {count}")
    return [float(score) for score in scores if score is not None]


def usage_tokens(body: Any, *path: str) -> int | None:
    """An optional token count; None when absent or not a number."""
    value = body
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cohere_style(
    path: str,
    *,
    top_field: str = "top_n",
    results_field: str = "results",
    usage: tuple[str, ...] = ("usage", "total_tokens"),
    query_usage: tuple[str, ...] | None = None,
    max_tokens_field: str | None = None,
    truncation_field: str | None = None,
    extras: Mapping[str, Any] | None = None,
) -> Provider:
    """An API shaped like Cohere's: ``{model, query, documents, <top_field>: all}`` plus ``extras`` (sent
    as they are); the answer's ``<results_field>`` is ``[{index, relevance_score}]``, its billed tokens at
    ``usage`` (and the query's share at ``query_usage``, when it reports one). The options the API has a
    field for: ``max_tokens_field`` carries ``max_tokens_per_doc``; ``truncation_field`` is false when
    long documents are to be refused rather than cut."""
    constant = dict(extras or {})

    def build(model: str, query: str, documents: list[str], options: ScoreOptions) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "query": query, "documents": documents}
        body[top_field] = len(documents)
        body.update(constant)
        if max_tokens_field and options.max_tokens_per_doc:
            body[max_tokens_field] = options.max_tokens_per_doc
        if truncation_field:
            body[truncation_field] = options.long_documents != "error"
        return body

    def parse(body: Any, headers: Mapping[str, str], count: int) -> Parsed:
        return Parsed(
            scores_by_index(field(body, results_field), count),
            total_tokens=usage_tokens(body, *usage),
            query_tokens=usage_tokens(body, *query_usage) if query_usage else None,
        )

    return Provider(path=path, build=build, parse=parse)
