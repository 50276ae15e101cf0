"""Reading test collections (BEIR, TREC, Cranfield) from tiny files written here, and the long-document
variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerankd.evaluate.collection import CollectionError, bury, load_collection


def write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Wings", "text": "Lift of a swept wing."},
        {"_id": "d2", "title": "", "text": "Boundary layers separate."},
        {"_id": "d3", "text": "Heat transfer in hypersonic flow."},
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n", encoding="utf-8")
    queries = [
        {"_id": "q1", "text": "wing lift"},
        {"_id": "q2", "text": "separation"},
        {"_id": "q3", "text": "x"},
    ]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\nq2\td2\t1\n", encoding="utf-8"
    )
    return folder


def test_beir(tmp_path: Path) -> None:
    collection = load_collection(write_beir(tmp_path / "beir"))
    assert collection.documents == {
        "d1": "Wings\nLift of a swept wing.",
        "d2": "Boundary layers separate.",
        "d3": "Heat transfer in hypersonic flow.",
    }
    assert collection.queries["q2"] == "separation"
    assert collection.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1}}  # grade 0 is not relevant
    assert collection.judged_queries() == ["q1", "q2"]
    with pytest.raises(CollectionError, match="splits here: test"):
        load_collection(tmp_path / "beir", split="dev")


def test_trec_with_sgml_topics_and_tsv_corpus(tmp_path: Path) -> None:
    (tmp_path / "topics.txt").write_text(
        "<top>\n<num> Number: 401\n<title> foreign minorities, Germany\n\n"
        "<desc> Description:\nignored\n</top>\n"
        "<top>\n<num> Number: 402\n<title> behavioral genetics\n</top>\n",
        encoding="utf-8",
    )
    (tmp_path / "qrels.txt").write_text("401 0 A 1\n401 0 B 0\n402 0 B 3\n", encoding="utf-8")
    (tmp_path / "corpus.tsv").write_text("A\tTitle A\tbody of A\nB\tbody of B\n", encoding="utf-8")
    collection = load_collection(tmp_path, "trec")
    assert collection.queries == {"401": "foreign minorities, Germany", "402": "behavioral genetics"}
    assert collection.qrels == {"401": {"A": 1}, "402": {"B": 3}}
    assert collection.documents == {"A": "Title A\nbody of A", "B": "body of B"}


def test_trec_with_tsv_topics_and_jsonl_corpus_named_explicitly(tmp_path: Path) -> None:
    (tmp_path / "q.tsv").write_text("1\twhat is lift\n", encoding="utf-8")
    (tmp_path / "judged").write_text("1 Q0 7 2\n", encoding="utf-8")
    (tmp_path / "docs.jsonl").write_text(
        json.dumps({"docno": "7", "contents": "lift is a force"}), encoding="utf-8"
    )
    collection = load_collection(
        tmp_path, "trec", topics=tmp_path / "q.tsv", qrels=tmp_path / "judged", corpus=tmp_path / "docs.jsonl"
    )
    assert (collection.queries, collection.qrels, collection.documents) == (
        {"1": "what is lift"},
        {"1": {"7": 2}},
        {"7": "lift is a force"},
    )
    (tmp_path / "judged").write_text("1 7 2\n", encoding="utf-8")
    with pytest.raises(CollectionError, match="judged:1: expected"):
        load_collection(
            tmp_path,
            "trec",
            topics=tmp_path / "q.tsv",
            qrels=tmp_path / "judged",
            corpus=tmp_path / "docs.jsonl",
        )


def test_cranfield_numbers_queries_by_position_and_grades_codes(tmp_path: Path) -> None:
    (tmp_path / "cran.all.1400").write_text(
        ".I 1\n.T\nexperimental wings\n.A\nsomeone\n.B\nj. ae. sc.\n.W\nlift was\nmeasured .\n"
        ".I 2\n.T\nflow\n.W\nheat transfer\n",
        encoding="utf-8",
    )
    (tmp_path / "cran.qry").write_text(".I 001\n.W\nwing lift ?\n.I 004\n.W\nheat\n", encoding="utf-8")
    (tmp_path / "cranqrel").write_text("1 1 1\n1 2 4\n2 2 -1\n", encoding="utf-8")
    collection = load_collection(tmp_path)
    assert collection.documents == {
        "1": "experimental wings\nlift was measured .",
        "2": "flow\nheat transfer",
    }
    assert collection.queries == {"1": "wing lift ?", "2": "heat"}
    assert collection.qrels == {"1": {"1": 4, "2": 1}}  # code 1 is the best grade; -1 is no judgement


def test_bury_puts_unjudged_documents_first_and_keeps_the_text(tmp_path: Path) -> None:
    collection = load_collection(write_beir(tmp_path / "beir"))
    buried = bury(collection, 2, seed=3)
    filler = collection.documents["d3"]  # the one document judged relevant to nothing
    for document, text in collection.documents.items():
        assert buried[document] == "\n\n".join([filler, text])  # only one filler to draw from
    assert bury(collection, 1, seed=3) == bury(collection, 1, seed=3)


def test_missing_files_say_which(tmp_path: Path) -> None:
    with pytest.raises(CollectionError, match="not a folder"):
        load_collection(tmp_path / "nothing")
    (tmp_path / "corpus.jsonl").write_text("{not json\n", encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(CollectionError, match=r"corpus.jsonl:1 is not JSON"):
        load_collection(tmp_path)
