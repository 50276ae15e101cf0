"""rerankd: a self-hosted rerank API server and gateway, and a Python library (``from rerankd import
Reranker``). The library is imported on first use, so ``import rerankd`` (the CLI, the server's modules)
stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rerankd.serving.reranker import Ranking, Reranker

__version__ = "0.1.0"
__all__ = ["Ranking", "Reranker", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Ranking", "Reranker"):
        from rerankd.serving import reranker

        return getattr(reranker, name)
    raise AttributeError(f"module 'rerankd' has no attribute {name!r}")
