"""The Cranfield collection (1400 aerodynamics abstracts, 225 queries, graded judgements) as rerank requests.

The benchmarks' realistic workload. The collection is read by rerankd's own IR toolkit
(:func:`rerankd.evaluate.collection.read_cranfield`: one parser, ids as text, grades higher = more
relevant, 4 best .. 1 least); :func:`make_requests` turns it into rerank request bodies.
``python -m rerankd_support.cranfield`` prints a summary. Files, in ``<repo>/../shared/data/cranfield``
unless ``--cranfield DIR`` says otherwise: ``cran.all.1400``, ``cran.qry`` and ``cranqrel``.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from rerankd.evaluate.collection import Collection, read_cranfield
from rerankd_support.paths import SHARED

__all__ = ["Cranfield", "add_argument", "default_dir", "load", "make_requests"]

# The collection as rerankd.evaluate reads it (documents, queries, qrels: query -> {document: grade}).
Cranfield = Collection


def default_dir() -> Path:
    return SHARED / "data" / "cranfield"


def add_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--cranfield DIR`` option, shared by the scripts that read the collection."""
    parser.add_argument(
        "--cranfield",
        type=Path,
        default=default_dir(),
        metavar="DIR",
        help="folder with cran.all.1400, cran.qry and cranqrel [default: %(default)s]",
    )


def load(data_dir: Path | None = None) -> Collection:
    data_dir = data_dir or default_dir()
    missing = [name for name in ("cran.all.1400", "cran.qry", "cranqrel") if not (data_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"Cranfield files {missing} not found in {data_dir}; pass --cranfield DIR")
    return read_cranfield(data_dir)


def make_requests(
    n_docs: int, count: int, seed: int = 0, *, data: Collection | None = None, model: str = ""
) -> list[dict[str, Any]]:
    """``count`` rerank request bodies, each a query and ``n_docs`` abstracts.

    Each request holds the query's judged-relevant abstracts (at most ``n_docs``, the most relevant
    first) and random others to fill up, shuffled, so the server does real ranking work on realistic
    lengths. Queries cycle through the judged ones in a seeded random order.
    """
    data = data or load()
    rng = random.Random(seed)
    judged = data.judged_queries()
    rng.shuffle(judged)
    all_docs = list(data.documents)
    requests = []
    for i in range(count):
        query = judged[i % len(judged)]
        doc_ids = _pick_documents(data.qrels[query], all_docs, n_docs, rng)
        requests.append(
            {
                "model": model,
                "query": data.queries[query],
                "documents": [data.documents[doc] for doc in doc_ids],
                "top_n": n_docs,
                "return_documents": False,
            }
        )
    return requests


def _pick_documents(
    relevant: dict[str, int], all_docs: list[str], n_docs: int, rng: random.Random
) -> list[str]:
    chosen = sorted(relevant, key=lambda doc: -relevant[doc])[:n_docs]
    taken = set(chosen)
    others = [doc for doc in all_docs if doc not in taken]
    chosen += rng.sample(others, n_docs - len(chosen))
    rng.shuffle(chosen)
    return chosen


def _main() -> None:
    parser = argparse.ArgumentParser(description="Summarise the Cranfield collection.")
    add_argument(parser)
    args = parser.parse_args()
    data = load(args.cranfield)
    lengths = sorted(len(text.split()) for text in data.documents.values())
    judged = sum(len(docs) for docs in data.qrels.values())
    print(f"{len(data.documents)} documents (median {lengths[len(lengths) // 2]} words)")
    print(f"{len(data.queries)} queries, {len(data.qrels)} judged, {judged} relevance judgements")


if __name__ == "__main__":
    _main()
