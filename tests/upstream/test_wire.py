"""Provider adapters are pure: request bodies, strict parsing of answers, Retry-After, summaries."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from rerankd.errors import UpstreamError
from rerankd.types import ScoreOptions
from rerankd.upstream import PROVIDERS, rerankd, tei
from rerankd.upstream.base import retry_after_seconds, summarize
from rerankd.upstream.cohere import PROVIDER as cohere
from rerankd.upstream.voyage import PROVIDER as voyage
from rerankd.upstream.wire import scores_by_index


def test_every_provider_asks_for_all_documents() -> None:
    for name, provider in PROVIDERS.items():
        body = provider.build("m", "q", ["a", "b", "c"], ScoreOptions())
        texts = body.get("documents", body.get("texts"))
        assert texts == ["a", "b", "c"], name
        asked = body.get("top_n", body.get("top_k", "all"))
        assert asked in (3, None, "all"), name


def test_options_are_carried_where_the_api_has_them() -> None:
    assert cohere.build("m", "q", ["a"], ScoreOptions(max_tokens_per_doc=64))["max_tokens_per_doc"] == 64
    assert voyage.build("m", "q", ["a"], ScoreOptions(long_documents="error"))["truncation"] is False
    body = rerankd.build("m", "q", ["a"], ScoreOptions(instruction="find laws", max_chunks_per_doc=2))
    assert body["instruction"] == "find laws" and body["max_chunks_per_doc"] == 2
    assert "overlap_tokens" not in body


def test_scores_by_index_is_strict() -> None:
    assert scores_by_index([{"index": 1, "relevance_score": 0.5}, {"index": 0, "relevance_score": 1}], 2) == [
        1.0,
        0.5,
    ]
    for bad in (
        [{"index": 0, "relevance_score": 0.5}],  # a document left out
        [{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.4}],  # repeated
        [{"index": 2, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.4}],  # out of range
        [{"index": 0, "relevance_score": "high"}, {"index": 1, "relevance_score": 0.4}],
        [{"index": 0, "relevance_score": float("nan")}, {"index": 1, "relevance_score": 0.4}],
        {"index": 0},
    ):
        with pytest.raises(UpstreamError):
            scores_by_index(bad, 2)


def test_tei_usage_from_the_header() -> None:
    parsed = tei.parse([{"index": 0, "score": 0.3}], {"x-compute-tokens": "17"}, 1)
    assert parsed.scores == [0.3] and parsed.total_tokens == 17


def test_retry_after_forms() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.5 <= (retry_after_seconds(later) or 0) <= 5.5


def test_summaries_are_short_and_clean() -> None:
    response = httpx.Response(503, json={"message": "overloaded\n\x1b[31m" + "x" * 500, "secret": "s"})
    summary = summarize(response)
    assert summary.startswith("HTTP 503 Service Unavailable: overloaded")
    assert len(summary) < 220 and "\x1b" not in summary and "secret" not in summary
    assert summarize(httpx.Response(502, content=b"<html>bad gateway</html>")) == "HTTP 502 Bad Gateway"
