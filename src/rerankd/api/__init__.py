"""HTTP dialects: each module converts one wire format to and from ``rerankd.types`` and declares a
:class:`~rerankd.api.dialect.Dialect` (request and response models, ``render``, paths, error shape).

A new dialect is one module plus one line in ``DIALECTS``; ``routing.py`` gives it its paths, and
the ``v1_dialect`` setting accepts its name. ``routing.py`` also has the table of every path.
"""

from __future__ import annotations

from typing import Any

from rerankd.api import cohere, infinity, jina, seed, tei, vllm, voyage
from rerankd.api.dialect import Dialect

__all__ = ["DIALECTS"]

DIALECTS: dict[str, Dialect[Any]] = {
    dialect.name: dialect
    for dialect in (
        seed.DIALECT,
        cohere.V1,
        cohere.V2,
        jina.DIALECT,
        voyage.DIALECT,
        tei.DIALECT,
        infinity.DIALECT,
        vllm.DIALECT,
    )
}
