"""The batch file formats: one job per input line, one result per output line.

Input (JSONL): ``{"id": "q1", "query": "...", "documents": ["...", {"text": "..."}]}``, optionally with
``top_n`` and ``instruction`` overriding the command's flags; other fields are ignored. An id is a
string or an integer, unique in the file: it is what a rerun uses to skip the jobs already done.

Output (JSONL): ``{"id", "model", "results": [{"index", "relevance_score", "document"?}], "usage":
{...}}``, rendered by :func:`render` alone, so every engine writes the same bytes for the same scores.

:func:`scan` reads the input once before any work: it checks every line (a bad one is reported with its
line number), counts the pairs for the progress bar, and records where each pending job's line lies in
the file, so engines read back only those lines (Ray workers read them by byte range).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerankd.serving.reranker import Ranking

__all__ = ["BadLine", "Job", "JobOptions", "Pending", "Scan", "job_key", "parse_job", "render", "scan"]

JobId = str | int


class BadLine(ValueError):
    """A line of the input that is not a job; the message says what to fix."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.reason = message


@dataclass(frozen=True, slots=True)
class JobOptions:
    """How every job is ranked, unless its line says otherwise (``top_n``, ``instruction``)."""

    model: str
    top_n: int | None = None  # None: every document
    return_documents: bool = False
    instruction: str | None = None
    raw_scores: bool = False


@dataclass(frozen=True, slots=True)
class Job:
    id: JobId
    line: int  # 1-based, for messages
    query: str
    documents: tuple[str, ...]
    top_n: int | None = None  # None: the command's --top-n; 0: every document
    instruction: str | None = None

    @property
    def key(self) -> str:
        return job_key(self.id)


def job_key(job_id: JobId) -> str:
    """The id as JSON text: 1 and "1" are different jobs, as they are different values in the files."""
    return json.dumps(job_id)


def _document(value: Any, line: int, position: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return str(value["text"])
    raise BadLine(line, f"documents[{position}] must be a string or an object with a `text` string")


def parse_job(text: str, line: int) -> Job:
    """One input line as a job (BadLine, saying why, if it is not one)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadLine(line, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise BadLine(line, f"a job is a JSON object, not {type(data).__name__}")
    job_id = data.get("id")
    if isinstance(job_id, bool) or not isinstance(job_id, str | int):
        raise BadLine(line, "needs an `id`: a string or an integer, unique in the file")
    query = data.get("query")
    if not isinstance(query, str) or not query.strip():
        raise BadLine(line, "needs a `query`: a non-empty string")
    documents = data.get("documents")
    if not isinstance(documents, list) or not documents:
        raise BadLine(line, "needs `documents`: a non-empty list of strings or {text} objects")
    top_n = data.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0):
        raise BadLine(line, "`top_n` must be an integer >= 0 (0: every document)")
    instruction = data.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise BadLine(line, "`instruction` must be a string")
    return Job(
        id=job_id,
        line=line,
        query=query,
        documents=tuple(_document(value, line, i) for i, value in enumerate(documents)),
        top_n=top_n,
        instruction=instruction,
    )


def render(job: Job, ranking: Ranking) -> str:
    """A job's output line (without the newline)."""
    results = []
    for item in ranking.results:
        result: dict[str, Any] = {"index": item.index, "relevance_score": item.relevance_score}
        if item.document is not None:
            result["document"] = item.document
        results.append(result)
    usage = ranking.usage
    body = {
        "id": job.id,
        "model": ranking.model,
        "results": results,
        "usage": {
            "query_tokens": usage.query_tokens,
            "documents_tokens": usage.documents_tokens,
            "total_tokens": usage.total_tokens,
        },
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Pending:
    """A job still to do: its key, where its line lies, and its pairs (for progress)."""

    key: str
    line: int
    start: int  # byte offsets of the line in the input file
    end: int
    pairs: int


@dataclass
class Scan:
    """What the input holds, against what the output already has."""

    order: list[str]  # the keys of every valid job, in input order (what the output's order follows)
    pending: list[Pending]
    bad: list[BadLine]
    done: int  # valid jobs the output already has

    @property
    def pairs(self) -> int:
        return sum(job.pairs for job in self.pending)


def _lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, raw line) of a file; newlines split lines, nothing else does."""
    offset = 0
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            yield number, offset, raw
            offset += len(raw)


def scan(path: Path, done: Collection[str] = ()) -> Scan:
    """Check every line of the input; blank lines are skipped, a second use of an id is a bad line."""
    result = Scan(order=[], pending=[], bad=[], done=0)
    seen: dict[str, int] = {}
    for number, offset, raw in _lines(path):
        if not raw.strip():
            continue
        try:
            job = parse_job(raw.decode("utf-8"), number)
        except UnicodeDecodeError:
            result.bad.append(BadLine(number, "not UTF-8 text"))
            continue
        except BadLine as bad:
            result.bad.append(bad)
            continue
        key = job.key
        if key in seen:
            result.bad.append(BadLine(number, f"id {key} was already used on line {seen[key]}"))
            continue
        seen[key] = number
        result.order.append(key)
        if key in done:
            result.done += 1
        else:
            result.pending.append(Pending(key, number, offset, offset + len(raw), len(job.documents)))
    return result


def read_job(file: Any, pending: Pending) -> Job:
    """A pending job, read back from its byte range of the (binary, seekable) input file."""
    file.seek(pending.start)
    return parse_job(file.read(pending.end - pending.start).decode("utf-8"), pending.line)
