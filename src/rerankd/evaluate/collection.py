"""Test collections for ``rerankd eval``: documents, queries and graded judgements, read from BEIR's layout,
TREC files or Cranfield's own format, plus a long-document variant of any of them.

* BEIR: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``) and
  ``qrels/<split>.tsv`` (``query-id  corpus-id  score``, with a header line).
* TREC: topics (``<top>`` records with ``<num>`` and ``<title>``, or ``id<TAB>text`` lines), qrels
  (``query  iteration  document  relevance``) and a corpus as JSONL (``_id``/``id``/``docno`` and
  ``text``/``contents``, optional ``title``) or TSV (``id<TAB>text``, or ``id<TAB>title<TAB>text``).
* Cranfield: ``cran.all.1400``, ``cran.qry`` and ``cranqrel`` (SMART format). Queries are numbered by
  position (their ``.I`` numbers skip values; the judgements count by position). Relevance codes run
  from 1 (a complete answer) to 4 (of minimum interest), so grade = 5 − code; other codes are skipped.

A document's text is its title, a newline and its body (as BEIR's and Cranfield's usual setups index
them). Judgements of relevance 0 or less are kept out (they count as not relevant anyway).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Collection",
    "CollectionError",
    "Format",
    "bury",
    "detect_format",
    "load_collection",
    "read_beir",
    "read_cranfield",
    "read_trec",
]

Format = Literal["auto", "beir", "trec", "cranfield"]


class CollectionError(ValueError):
    """A collection cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Collection:
    name: str
    documents: dict[str, str]  # document id -> title + text
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {document id: relevance grade > 0}

    def judged_queries(self) -> list[str]:
        """The queries with at least one relevant document, in the collection's order."""
        return [query for query in self.queries if self.qrels.get(query)]


def _joined(title: str, text: str) -> str:
    return f"{title}\n{text}".strip() if title else text.strip()


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CollectionError(f"{path}:{number} is not JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise CollectionError(f"{path}:{number} must be a JSON object")
            yield record


def _first(record: dict[str, Any], keys: tuple[str, ...], path: Path) -> str:
    for key in keys:
        if key in record:
            return str(record[key])
    raise CollectionError(f"{path}: a record has none of the fields {', '.join(keys)}")


def _require(path: Path) -> Path:
    if not path.is_file():
        raise CollectionError(f"{path} not found")
    return path


def read_beir(folder: Path, split: str = "test") -> Collection:
    corpus = _require(folder / "corpus.jsonl")
    documents = {
        _first(r, ("_id", "id"), corpus): _joined(str(r.get("title") or ""), _first(r, ("text",), corpus))
        for r in _jsonl(corpus)
    }
    queries_path = _require(folder / "queries.jsonl")
    queries = {
        _first(r, ("_id", "id"), queries_path): _first(r, ("text",), queries_path)
        for r in _jsonl(queries_path)
    }
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise CollectionError(f"{qrels_path} not found; splits here: {', '.join(found) or 'none'}")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8") as rows:
        for number, row in enumerate(csv.reader(rows, delimiter="\t"), start=1):
            if len(row) < 3 or (number == 1 and not row[2].strip().lstrip("-").isdigit()):
                continue  # the header line
            _add(qrels, row[0], row[1], row[2], qrels_path, number)
    return Collection(folder.name, documents, queries, qrels)


def _add(
    qrels: dict[str, dict[str, int]], query: str, document: str, grade: str, path: Path, line: int
) -> None:
    try:
        value = int(float(grade))
    except ValueError:
        raise CollectionError(f"{path}:{line}: relevance {grade!r} is not a number") from None
    if value > 0:
        qrels.setdefault(query.strip(), {})[document.strip()] = value


_TOPIC = re.compile(r"<top>(.*?)</top>", re.S | re.I)
_NUM = re.compile(r"<num>\s*(?:Number:)?\s*(\S+)", re.I)
_TITLE = re.compile(r"<title>\s*(?:Topic:)?\s*(.*?)\s*(?=<[a-z]+>|$)", re.S | re.I)


def _read_topics(path: Path) -> dict[str, str]:
    text = _require(path).read_text(encoding="utf-8")
    if "<top>" in text.lower():
        topics = {}
        for record in _TOPIC.findall(text):
            found, title = _NUM.search(record), _TITLE.search(record)
            if found is None or title is None:
                raise CollectionError(f"{path}: a <top> record has no <num> or <title>")
            topics[found.group(1)] = " ".join(title.group(1).split())
        return topics
    topics = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            query, tab, query_text = line.partition("\t")
            if not tab:
                raise CollectionError(f"{path}:{number}: expected `id<TAB>text` or <top> records")
            topics[query.strip()] = query_text.strip()
    return topics


def _read_trec_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(_require(path).read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise CollectionError(f"{path}:{number}: expected `query iteration document relevance`")
        _add(qrels, parts[0], parts[2], parts[3], path, number)
    return qrels


def _read_corpus(path: Path) -> dict[str, str]:
    _require(path)
    if path.suffix == ".jsonl":
        return {
            _first(r, ("_id", "id", "docno", "docid"), path): _joined(
                str(r.get("title") or ""), _first(r, ("text", "contents", "body"), path)
            )
            for r in _jsonl(path)
        }
    documents = {}
    with path.open(encoding="utf-8") as rows:
        for number, row in enumerate(csv.reader(rows, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if len(row) == 2:
                documents[row[0]] = row[1].strip()
            elif len(row) == 3:
                documents[row[0]] = _joined(row[1], row[2])
            elif row:
                raise CollectionError(f"{path}:{number}: expected `id<TAB>text` or `id<TAB>title<TAB>text`")
    return documents


def read_trec(topics: Path, qrels: Path, corpus: Path, name: str | None = None) -> Collection:
    return Collection(
        name or corpus.parent.name, _read_corpus(corpus), _read_topics(topics), _read_trec_qrels(qrels)
    )


def _smart_records(path: Path) -> Iterator[dict[str, str]]:
    """The records of a SMART-format file, as {field letter: text} (``.I`` under "I")."""
    fields: dict[str, list[str]] | None = None
    current = ""
    # errors="replace": the Cranfield files carry a few stray bytes; splitlines() copes with CRLF.
    for line in _require(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(".I"):
            if fields is not None:
                yield {name: " ".join(p for p in parts if p) for name, parts in fields.items()}
            fields, current = {"I": [line[2:].strip()]}, ""
        elif len(line) == 2 and line.startswith(".") and line[1].isalpha():
            current = line[1]
            if fields is not None:
                fields.setdefault(current, [])
        elif fields is not None and current:
            fields[current].append(line.strip())
    if fields is not None:
        yield {name: " ".join(p for p in parts if p) for name, parts in fields.items()}


def read_cranfield(folder: Path) -> Collection:
    documents = {
        record["I"]: _joined(record.get("T", ""), record.get("W", ""))
        for record in _smart_records(folder / "cran.all.1400")
    }
    queries = {
        str(number): record.get("W", "")
        for number, record in enumerate(_smart_records(folder / "cran.qry"), start=1)
    }
    qrels: dict[str, dict[str, int]] = {}
    for line in _require(folder / "cranqrel").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("1", "2", "3", "4"):
            qrels.setdefault(parts[0], {})[parts[1]] = 5 - int(parts[2])
    return Collection("cranfield", documents, queries, qrels)


def detect_format(folder: Path) -> Format:
    if (folder / "cran.all.1400").is_file():
        return "cranfield"
    if (folder / "corpus.jsonl").is_file() and (folder / "queries.jsonl").is_file():
        return "beir"
    return "trec"


def _one(folder: Path, patterns: tuple[str, ...], what: str) -> Path:
    found = sorted({path for pattern in patterns for path in folder.glob(pattern) if path.is_file()})
    if len(found) != 1:
        listed = ", ".join(path.name for path in found) or "none"
        raise CollectionError(
            f"cannot tell the {what} file in {folder} (candidates: {listed}); name it with --{what}"
        )
    return found[0]


def load_collection(
    path: Path,
    format: Format = "auto",
    *,
    split: str = "test",
    topics: Path | None = None,
    qrels: Path | None = None,
    corpus: Path | None = None,
) -> Collection:
    """Read a collection from a folder (or TREC files named one by one)."""
    if not path.is_dir():
        raise CollectionError(f"{path} is not a folder")
    chosen = detect_format(path) if format == "auto" else format
    if chosen == "cranfield":
        return read_cranfield(path)
    if chosen == "beir":
        return read_beir(path, split)
    return read_trec(
        topics or _one(path, ("topics*", "*.topics*", "queries.tsv"), "topics"),
        qrels or _one(path, ("qrels*", "*.qrels*"), "qrels"),
        corpus or _one(path, ("corpus.jsonl", "corpus.tsv", "collection.tsv"), "corpus"),
        path.name,
    )


def bury(collection: Collection, before: int, seed: int = 0) -> dict[str, str]:
    """The long-document variant's texts: each document placed after ``before`` others drawn at random
    (seeded) from those judged relevant to no query, so that a document's own text lies past a short
    model window while every judgement still holds (the filler is relevant to nothing)."""
    rng = random.Random(seed)
    judged = {document for documents in collection.qrels.values() for document in documents}
    fillers = [document for document in collection.documents if document not in judged]
    if not fillers:
        raise CollectionError("every document is judged relevant to some query: nothing to bury them under")
    buried = {}
    for document, text in collection.documents.items():
        drawn = [collection.documents[other] for other in rng.sample(fillers, min(before, len(fillers)))]
        buried[document] = "\n\n".join([*drawn, text])
    return buried
