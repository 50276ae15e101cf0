"""Upstream rerank providers: one module per provider API (``PATH``, pure ``build`` and ``parse``),
one shared sender (``base.UpstreamScorer``). A new provider is one module plus one line in ``PROVIDERS``.
"""

from __future__ import annotations

from types import ModuleType

from rerankd.config import ModelSpec
from rerankd.upstream import cohere, infinity, jina, rerankd, seed, tei, vllm, voyage
from rerankd.upstream.base import UpstreamScorer

__all__ = ["PROVIDERS", "UpstreamScorer", "make_upstream_scorer"]

PROVIDERS: dict[str, ModuleType] = {
    "cohere": cohere,
    "jina": jina,
    "voyage": voyage,
    "seed": seed,
    "tei": tei,
    "vllm": vllm,
    "infinity": infinity,
    "rerankd": rerankd,
}


def make_upstream_scorer(spec: ModelSpec) -> UpstreamScorer:
    return UpstreamScorer(spec, PROVIDERS[spec.provider or ""])
