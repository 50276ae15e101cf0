"""The benchmarks' Cranfield workload reads the collection with rerankd's own IR toolkit (one parser, grades
higher = more relevant) and puts a query's most relevant abstracts in its requests."""

from __future__ import annotations

from pathlib import Path

import pytest
from rerankd_support import cranfield

from rerankd.evaluate.collection import Collection


def test_requests_take_the_most_relevant_documents_first() -> None:
    documents = {str(i): f"abstract {i}" for i in range(1, 21)}
    qrels = {"1": {"3": 1, "4": 4, "5": 2, "6": 4}, "2": {"7": 3}}
    data = Collection("tiny", documents, {"1": "wing flutter", "2": "heat transfer"}, qrels)
    for body in cranfield.make_requests(2, 6, seed=5, data=data):
        if body["query"] == "wing flutter":
            # Grade 4 is the most relevant: both grade-4 abstracts, never a grade 1 or 2 one.
            assert sorted(body["documents"]) == ["abstract 4", "abstract 6"]
        else:
            assert "abstract 7" in body["documents"] and len(body["documents"]) == 2


def test_the_shared_collection_loads_through_rerankd_evaluate() -> None:
    folder = cranfield.default_dir()
    if not (folder / "cranqrel").is_file():
        pytest.skip(f"the Cranfield files are not in {folder}")
    data = cranfield.load(folder)
    assert isinstance(data, Collection)
    assert (len(data.documents), len(data.queries)) == (1400, 225)
    assert {grade for judged in data.qrels.values() for grade in judged.values()} == {1, 2, 3, 4}
    requests = cranfield.make_requests(20, 10, data=data)
    assert all(len(body["documents"]) == 20 for body in requests)


def test_missing_files_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        cranfield.load(tmp_path)
