"""The first stage of ``rerankd eval``: the candidates each query's rerankers reorder.

Either BM25 over the whole collection (bm25s, with the tokenizer of rerankd's own ``bm25`` model: words
lower-cased, stemmed, English stop words out, CJK as character bigrams), or a run file of the user's
own retriever in TREC format (``query Q0 document rank score tag``; the best ``top_k`` per query by
score are kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rerankd.evaluate.collection import Collection, CollectionError

__all__ = ["Run", "bm25_run", "read_run", "top"]

Run = dict[str, dict[str, float]]  # query id -> {document id: score}


def bm25_run(
    collection: Collection, queries: Sequence[str], top_k: int, k1: float = 1.5, b: float = 0.75
) -> Run:
    import bm25s
    import numpy as np

    from rerankd.backends.bm25 import tokenize

    ids = list(collection.documents)
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index([tokenize(collection.documents[doc]) for doc in ids], show_progress=False)
    run: Run = {}
    for query in queries:
        words = tokenize(collection.queries[query])
        scores = retriever.get_scores(words) if words else np.zeros(len(ids))
        # Stable: among equal scores the collection's order decides, so reruns give the same candidates.
        best = np.argsort(-scores, kind="stable")[:top_k]
        run[query] = {ids[i]: float(scores[i]) for i in best}
    return run


def read_run(path: Path, collection: Collection, top_k: int) -> Run:
    run: Run = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CollectionError(f"cannot read run file {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise CollectionError(f"{path}:{number}: expected `query Q0 document rank score tag`")
        try:
            score = float(parts[4])
        except ValueError:
            raise CollectionError(f"{path}:{number}: score {parts[4]!r} is not a number") from None
        if parts[2] not in collection.documents:
            raise CollectionError(f"{path}:{number}: document {parts[2]!r} is not in the collection's corpus")
        run.setdefault(parts[0], {})[parts[2]] = score
    return {query: top(documents, top_k) for query, documents in run.items()}


def top(scores: dict[str, float], k: int) -> dict[str, float]:
    """The ``k`` best, best first (ties: in the order given)."""
    return dict(sorted(scores.items(), key=lambda item: -item[1])[:k])
