"""Local backends, by ``kind``. A new kind is one module plus one line in ``_REGISTRY``.

Modules are imported on first load, so a server that only serves bm25 never imports torch.
"""

from __future__ import annotations

import importlib

from rerankd.backends.base import BatchedBackend, DirectBackend
from rerankd.config import ModelSpec

__all__ = ["BatchedBackend", "DirectBackend", "load_backend"]

_REGISTRY: dict[str, str] = {
    "cross-encoder": "rerankd.backends.cross_encoder:CrossEncoderBackend",
    "bi-encoder": "rerankd.backends.bi_encoder:BiEncoderBackend",
    "bm25": "rerankd.backends.bm25:Bm25Backend",
    "llm-reranker": "rerankd.backends.llm_reranker:LlmRerankerBackend",
}


def load_backend(spec: ModelSpec) -> BatchedBackend | DirectBackend:
    """Load the model a spec describes (slow: reads weights). Call it off the event loop."""
    module_name, class_name = _REGISTRY[spec.kind].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    backend: BatchedBackend | DirectBackend = backend_class.load(spec)
    return backend
