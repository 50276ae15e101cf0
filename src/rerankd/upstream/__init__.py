"""Upstream rerank providers: one module per provider API, each declaring a :class:`Provider`
(``path``, pure ``build`` and ``parse``); one shared sender (``base.UpstreamScorer``).

Most APIs are shaped like Cohere's and differ only in data (path, field names, where the usage is): their
record is ``wire.cohere_style(...)``, a few lines. TEI and another rerankd write their own ``build`` or
``parse``. A new provider is one module plus one line in ``PROVIDERS``; the config's ``provider``
setting accepts exactly these names.
"""

from __future__ import annotations

from rerankd.upstream import cohere, infinity, jina, rerankd, seed, tei, vllm, voyage
from rerankd.upstream.wire import Provider

__all__ = ["PROVIDERS", "Provider"]

PROVIDERS: dict[str, Provider] = {
    "cohere": cohere.PROVIDER,
    "jina": jina.PROVIDER,
    "voyage": voyage.PROVIDER,
    "seed": seed.PROVIDER,
    "tei": tei.PROVIDER,
    "vllm": vllm.PROVIDER,
    "infinity": infinity.PROVIDER,
    "rerankd": rerankd.PROVIDER,
}
