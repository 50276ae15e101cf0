"""The Cranfield collection (1400 aerodynamics abstracts, 225 queries, graded judgements) as rerank requests.

The benchmarks' realistic workload: :func:`load` parses the collection, :func:`make_requests` turns it
into rerank request bodies. ``python -m rerankd_support.cranfield`` prints a summary. Files, in
``<repo>/../shared/data/cranfield`` unless ``--cranfield DIR`` says otherwise:

* ``cran.all.1400``: documents, fields ``.I`` (id) ``.T`` (title) ``.A`` (authors) ``.B`` (source)
  ``.W`` (abstract). A document's text is its title followed by its abstract.
* ``cran.qry``: queries, ``.I`` then ``.W``. The ``.I`` numbers skip values (001, 002, 004, ...) but the
  judgements number queries by position, 1..225, so queries are numbered here by their order.
* ``cranqrel``: ``query doc code`` lines. Codes 1-4 are degrees of relevance (1 best); the one ``-1``
  line per query is not a judgement of relevance and is skipped.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerankd_support.paths import SHARED

__all__ = [
    "Cranfield",
    "add_argument",
    "default_dir",
    "load",
    "make_requests",
    "parse_documents",
    "parse_qrels",
    "parse_queries",
]

RELEVANT_CODES = frozenset({1, 2, 3, 4})


@dataclass(frozen=True)
class Cranfield:
    documents: dict[int, str]  # doc id (.I) -> title + abstract
    queries: dict[int, str]  # query number (1..225, by position) -> text
    qrels: dict[int, dict[int, int]]  # query number -> {doc id: relevance code 1..4}


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


def _records(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Split a SMART-format file into (id, {field letter: text}) records."""
    record_id: str | None = None
    fields: dict[str, list[str]] = {}
    current: str | None = None
    # splitlines() also takes care of the files' CRLF line ends.
    for line in text.splitlines():
        if line.startswith(".I"):
            if record_id is not None:
                yield record_id, _joined(fields)
            record_id, fields, current = line[2:].strip(), {}, None
        elif len(line) == 2 and line.startswith(".") and line[1].isalpha():
            current = line[1]
            fields.setdefault(current, [])
        elif current is not None:
            fields[current].append(line.strip())
    if record_id is not None:
        yield record_id, _joined(fields)


def _joined(fields: dict[str, list[str]]) -> dict[str, str]:
    return {name: " ".join(part for part in lines if part) for name, lines in fields.items()}


def parse_documents(path: Path) -> dict[int, str]:
    documents: dict[int, str] = {}
    for record_id, fields in _records(path.read_text(encoding="utf-8", errors="replace")):
        title, abstract = fields.get("T", ""), fields.get("W", "")
        # Title then abstract, as indexed in the usual Cranfield setups, even though many abstracts
        # open by repeating the title: request lengths then match what rerankers see in practice.
        documents[int(record_id)] = f"{title}\n{abstract}".strip()
    return documents


def parse_queries(path: Path) -> dict[int, str]:
    records = _records(path.read_text(encoding="utf-8", errors="replace"))
    return {number: fields.get("W", "") for number, (_, fields) in enumerate(records, start=1)}


def parse_qrels(path: Path) -> dict[int, dict[int, int]]:
    qrels: dict[int, dict[int, int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        query, doc, code = int(parts[0]), int(parts[1]), int(parts[2])
        if code in RELEVANT_CODES:
            qrels.setdefault(query, {})[doc] = code
    return qrels


def load(data_dir: Path | None = None) -> Cranfield:
    data_dir = data_dir or default_dir()
    missing = [name for name in ("cran.all.1400", "cran.qry", "cranqrel") if not (data_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"Cranfield files {missing} not found in {data_dir}; pass --cranfield DIR")
    return Cranfield(
        documents=parse_documents(data_dir / "cran.all.1400"),
        queries=parse_queries(data_dir / "cran.qry"),
        qrels=parse_qrels(data_dir / "cranqrel"),
    )


def make_requests(
    n_docs: int, count: int, seed: int = 0, *, data: Cranfield | None = None, model: str = ""
) -> list[dict[str, Any]]:
    """``count`` rerank request bodies, each a query and ``n_docs`` abstracts.

    Each request holds the query's judged-relevant abstracts (at most ``n_docs``) and random others to
    fill up, shuffled, so the server does real ranking work on realistic lengths. Queries cycle through
    the judged ones in a seeded random order.
    """
    data = data or load()
    rng = random.Random(seed)
    judged = sorted(query for query in data.qrels if query in data.queries)
    rng.shuffle(judged)
    all_docs = sorted(data.documents)
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
    relevant: dict[int, int], all_docs: list[int], n_docs: int, rng: random.Random
) -> list[int]:
    chosen = sorted(relevant, key=lambda doc: relevant[doc])[:n_docs]
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
