"""The Python API (``from rerankd import Reranker``): the same answers as the HTTP API on the same
models, the async twin, input errors, and a context manager that stops the models' threads."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rerankd_support.harness import serve_app

from rerankd import Ranking, Reranker
from rerankd.api.app import create_app
from rerankd.config import ConfigError, load_settings
from rerankd.errors import InvalidRequest, ModelNotFound

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
    "Capitalization in English grammar is the use of a capital letter at the start of a word.",
    "Capital punishment has existed in the United States since before it was a country.",
]


def write_config(tmp_path: Path, tiny_bert: Path) -> Path:
    config = {
        "models": [
            {"name": "tiny", "kind": "cross-encoder", "source": str(tiny_bert), "dtype": "fp32"},
            {"name": "bm25", "kind": "bm25"},
        ]
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def assert_same(ranking: dict[str, Any], other: dict[str, Any]) -> None:
    """Same documents in the same order, same usage; scores equal to float32 precision: a pass packs
    inputs by a cost measured at load, so two runs may pad a document differently, which moves the last
    bits of a transformer's score."""
    assert [r["index"] for r in ranking["results"]] == [r["index"] for r in other["results"]]
    assert [r["document"] for r in ranking["results"]] == [r["document"] for r in other["results"]]
    scores = [r["relevance_score"] for r in ranking["results"]]
    assert scores == pytest.approx([r["relevance_score"] for r in other["results"]], rel=1e-5, abs=1e-6)
    assert ranking["usage"] == other["usage"]


def as_wire(ranking: Ranking) -> dict[str, Any]:
    """A ranking in the shape of the seed API's answer (its results and usage)."""
    return {
        "results": [
            {"index": r.index, "relevance_score": r.relevance_score, "document": r.document}
            for r in ranking.results
        ],
        "usage": {
            "total_tokens": ranking.usage.total_tokens,
            "query_tokens": ranking.usage.query_tokens,
            "documents_tokens": ranking.usage.documents_tokens,
        },
    }


@pytest.mark.parametrize("model", ["tiny", "bm25"])
def test_the_python_api_answers_as_the_http_api(tmp_path: Path, tiny_bert: Path, model: str) -> None:
    path = write_config(tmp_path, tiny_bert)
    with Reranker.from_config(path, model=model) as reranker:
        ranking = reranker.rerank(QUERY, DOCUMENTS, top_n=3)
    with serve_app(create_app(load_settings(path))) as server:
        body = {"model": model, "query": QUERY, "documents": DOCUMENTS, "top_n": 3}
        answer = httpx.post(f"{server.url}/v1/rerank", json=body, timeout=60).json()
    assert ranking.model == model
    assert len(ranking.results) == 3
    assert_same(as_wire(ranking), answer)
    if model == "bm25":  # no padding, no float32: the very same numbers
        assert as_wire(ranking) == {"results": answer["results"], "usage": answer["usage"]}


def test_the_async_twin_gives_the_same_rankings_from_concurrent_calls(
    tmp_path: Path, tiny_bert: Path
) -> None:
    queries = [QUERY, "Nevada", "islands in the Pacific", "capital letters"]
    with Reranker.from_config(write_config(tmp_path, tiny_bert)) as reranker:
        one_by_one = [reranker.rerank(query, DOCUMENTS) for query in queries]

        async def together() -> list[Ranking]:
            return await asyncio.gather(*(reranker.arerank(query, DOCUMENTS) for query in queries))

        for ranking, alone in zip(asyncio.run(together()), one_by_one, strict=True):
            assert_same(as_wire(ranking), as_wire(alone))
    assert [len(ranking.results) for ranking in one_by_one] == [len(DOCUMENTS)] * len(queries)


def test_options_reach_the_service(tmp_path: Path, tiny_bert: Path) -> None:
    with Reranker.from_config(write_config(tmp_path, tiny_bert)) as reranker:
        ranking = reranker.rerank(QUERY, [{"text": d} for d in DOCUMENTS], return_documents=False, top_n=2)
        raw = reranker.rerank(QUERY, DOCUMENTS, raw_scores=True, top_n=0)
        scored = reranker.rerank(QUERY, DOCUMENTS, top_n=0)
    assert [r.document for r in ranking.results] == [None, None]
    assert [r.index for r in raw.results] == [r.index for r in scored.results]
    # Sigmoid scores lie in (0, 1); the raw logits of the same order are not all inside it.
    assert all(0 < r.relevance_score < 1 for r in scored.results)
    assert [r.relevance_score for r in raw.results] != [r.relevance_score for r in scored.results]


def test_one_model_from_its_settings() -> None:
    with Reranker.from_model("bm25", name="lexical", k1=1.2, max_documents=3) as reranker:
        assert reranker.model == "lexical"
        ranking = reranker.rerank("capital of Nevada", DOCUMENTS[:3], top_n=1)
        assert ranking.results[0].index == 0
        with pytest.raises(Exception, match="at most 3"):
            reranker.rerank("capital", DOCUMENTS)


def test_bad_input_gets_a_clear_error(tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting `prompt` for kind bm25"):
        Reranker.from_model("bm25", prompt="x")
    with pytest.raises(ModelNotFound, match="available models: bm25, tiny"):
        Reranker.from_config(write_config(tmp_path, tiny_bert), model="nope")
    with Reranker.from_model("bm25") as reranker:
        with pytest.raises(InvalidRequest, match="document 1 is a int"):
            reranker.rerank("q", ["a", 3])  # type: ignore[list-item]
        with pytest.raises(InvalidRequest, match="`documents` is a string"):
            reranker.rerank("q", "a document")
        with pytest.raises(InvalidRequest, match="`query` is empty"):
            reranker.rerank(" ", ["a"])
    with pytest.raises(RuntimeError, match="closed"):
        reranker.rerank("q", ["a"])


def test_closing_stops_the_models_threads(tmp_path: Path, tiny_bert: Path) -> None:
    def rerankd_threads() -> set[str]:
        return {
            t.name for t in threading.enumerate() if t.name.startswith(("model-tiny", "rerankd-reranker"))
        }

    before = rerankd_threads()
    with Reranker.from_config(write_config(tmp_path, tiny_bert)) as reranker:
        reranker.load()
        assert rerankd_threads() - before
    assert rerankd_threads() == before


def test_importing_the_library_loads_no_model_library_and_no_ray() -> None:
    code = (
        "import sys, rerankd\nfrom rerankd import Reranker\n"
        "print(sorted({'torch', 'ray'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_model_that_cannot_load_is_raised_not_also_logged_with_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller gets the error, with its traceback; the log gets one line, not a second traceback."""
    from rerankd.errors import ModelUnavailable

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")  # a folder that fails inside the load
    with (
        caplog.at_level("ERROR"),
        Reranker.from_model("cross-encoder", str(broken)) as reranker,
        pytest.raises(ModelUnavailable, match="cannot be loaded"),
    ):
        reranker.rerank("q", ["d"])
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert errors and all(record.exc_info is None for record in errors)
