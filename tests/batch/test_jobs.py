"""The batch input format: parsing a line, the checks of a whole file, and the output line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerankd.batch.jobs import BadLine, Job, parse_job, read_job, render, scan
from rerankd.serving.reranker import Ranking
from rerankd.types import RankedDocument, Usage


def test_a_line_becomes_a_job() -> None:
    line = json.dumps({"id": 7, "query": "q", "documents": ["a", {"text": "b", "url": "x"}], "top_n": 0})
    job = parse_job(line, 3)
    assert job == Job(id=7, line=3, query="q", documents=("a", "b"), top_n=0)
    assert job.key == "7"
    assert parse_job(json.dumps({"id": "7", "query": "q", "documents": ["a"]}), 1).key == '"7"'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a job is a JSON object, not list"),
        ('{"query": "q", "documents": ["a"]}', "needs an `id`"),
        ('{"id": true, "query": "q", "documents": ["a"]}', "needs an `id`"),
        ('{"id": 1, "query": " ", "documents": ["a"]}', "needs a `query`"),
        ('{"id": 1, "query": "q", "documents": []}', "needs `documents`"),
        ('{"id": 1, "query": "q", "documents": ["a", 2]}', r"documents\[1\] must be a string"),
        ('{"id": 1, "query": "q", "documents": ["a"], "top_n": -1}', "`top_n` must be an integer >= 0"),
        ('{"id": 1, "query": "q", "documents": ["a"], "instruction": 3}', "`instruction` must be a string"),
    ],
)
def test_a_bad_line_says_which_and_why(line: str, reason: str) -> None:
    with pytest.raises(BadLine, match=f"^line 9: .*{reason}") as caught:
        parse_job(line, 9)
    assert caught.value.line == 9


def test_scan_checks_every_line_and_skips_what_is_done(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": "a", "query": "q", "documents": ["x", "y"]}),
        "",
        "oops",
        json.dumps({"id": "b", "query": "q", "documents": ["x\u2028y"]}),  # a raw line separator is text
        json.dumps({"id": "a", "query": "again", "documents": ["z"]}),
        json.dumps({"id": "c", "query": "q", "documents": ["x", "y", "z"]}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = scan(path, done={'"b"'})
    assert found.order == ['"a"', '"b"', '"c"']
    assert [job.key for job in found.pending] == ['"a"', '"c"']
    assert (found.done, found.pairs) == (1, 5)
    assert [(bad.line, bad.reason) for bad in found.bad] == [
        (3, "not valid JSON (Expecting value at column 1)"),
        (5, 'id "a" was already used on line 1'),
    ]
    with path.open("rb") as file:
        assert read_job(file, found.pending[1]).documents == ("x", "y", "z")
        assert read_job(file, found.pending[0]).line == 1


def test_render_is_compact_json_with_documents_only_when_asked() -> None:
    job = Job(id="q1", line=1, query="q", documents=("a", "b"))
    ranking = Ranking("m", (RankedDocument(1, 0.5, None), RankedDocument(0, 0.25, "é")), Usage(2, 7))
    assert render(job, ranking) == (
        '{"id":"q1","model":"m","results":[{"index":1,"relevance_score":0.5},'
        '{"index":0,"relevance_score":0.25,"document":"é"}],'
        '"usage":{"query_tokens":2,"documents_tokens":7,"total_tokens":9}}'
    )
