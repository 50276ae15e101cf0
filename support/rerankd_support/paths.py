"""Where the repository, its shared data and its caches are, as seen from this package.

``rerankd-support`` is installed in editable mode from ``<repo>/support`` (the Makefile does it), so the
repository is two folders above this package. Test data lives beside the repository in ``../shared``
(the seed examples, the Cranfield collection); generated benchmark models and environments are kept in
``<repo>/.cache``, which git ignores.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BENCH_CACHE", "CACHE", "REPO", "SHARED"]

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CACHE = REPO / ".cache"
BENCH_CACHE = CACHE / "bench-models"
