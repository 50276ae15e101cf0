"""`rerankd eval` end to end on a tiny BEIR collection written here: bm25 and a generated bi-encoder, a
hybrid tuned on half the queries, long-document modes, the files written, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from rerankd.commands.cli import main
from rerankd.evaluate.runner import weight_grid

TOPICS = ["wing lift", "boundary layer", "heat transfer", "shock wave", "flutter", "nozzle flow"]


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-beir"
    (folder / "qrels").mkdir(parents=True)
    corpus, qrels = [], ["query-id\tcorpus-id\tscore"]
    for number, topic in enumerate(TOPICS):
        for k in range(3):
            document = f"d{number}-{k}"
            corpus.append({"_id": document, "title": "", "text": f"notes {k} on {topic} " * (k + 1)})
            if k < 2:
                qrels.append(f"q{number}\t{document}\t{2 - k}")
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus), encoding="utf-8")
    queries = [{"_id": f"q{n}", "text": f"what about {topic}"} for n, topic in enumerate(TOPICS)]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels), encoding="utf-8")
    return folder


@pytest.fixture
def config(tmp_path: Path, tiny_bi_encoder: Path) -> Path:
    models = [
        {"name": "bm25", "kind": "bm25"},
        {"name": "tiny", "kind": "bi-encoder", "source": str(tiny_bi_encoder), "max_length": 16},
        {"name": "mix", "kind": "hybrid", "components": [{"model": "bm25"}, {"model": "tiny"}]},
    ]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"models": models}), encoding="utf-8")
    return path


def test_eval_tunes_a_hybrid_on_half_and_reports_the_rest(
    collection: Path, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["eval", str(collection), "--config", str(config), "-m", "tiny", "-m", "mix", "--tune"]
    assert main([*argv, "--top-k", "6", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "3 queries held out (3 used for tuning)" in printed
    for system in ("BM25 (first stage)", "| tiny |", "| mix |", "mix tuned", "fusion:"):
        assert system in printed
    assert {p.name for p in out.iterdir()} == {
        "results.md",
        "per_query.csv",
        "summary.json",
        "measures.png",
        "gain.png",
    }
    with (out / "per_query.csv").open(encoding="utf-8") as rows:
        table = list(csv.DictReader(rows))
    assert len(table) == 4 * 3  # 4 systems x 3 held-out queries
    assert {row["system"] for row in table} == {"BM25 (first stage)", "tiny", "mix", "mix tuned"}
    assert all(0 <= float(row["NDCG@10"]) <= 1 for row in table)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [system["name"] for system in summary["systems"]] == [
        "BM25 (first stage)",
        "tiny",
        "mix",
        "mix tuned",
    ]
    # The settings keep their JSON types: numbers, booleans, null; paths as text.
    used = summary["settings"]
    assert used["top_k"] == 6 and used["tune"] is True and used["no_progress"] is True
    assert used["run"] is None and used["out"] == str(out)


def test_eval_reports_usage_tokens_per_query_a_cascade_counting_every_stage(
    collection: Path, tmp_path: Path, tiny_bi_encoder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = [
        {"name": "bm25", "kind": "bm25"},
        {"name": "tiny", "kind": "bi-encoder", "source": str(tiny_bi_encoder), "max_length": 16},
        {"name": "cut", "kind": "cascade", "stages": [{"model": "bm25"}, {"model": "tiny", "top_k": 2}]},
    ]
    config = tmp_path / "cascade.yaml"
    config.write_text(yaml.safe_dump({"models": models}), encoding="utf-8")
    out = tmp_path / "out"
    argv = ["eval", str(collection), "--config", str(config), "-m", "bm25", "-m", "tiny", "-m", "cut"]
    assert main([*argv, "--top-k", "6", "--out", str(out), "--no-plots", "--no-progress"]) == 0
    assert "| tokens/query |" in capsys.readouterr().out
    with (out / "per_query.csv").open(encoding="utf-8") as rows:
        tokens = {(row["system"], row["query"]): row["tokens"] for row in csv.DictReader(rows)}
    assert {tokens["BM25 (first stage)", f"q{n}"] for n in range(6)} == {""}  # not a model's answer
    for n in range(6):
        bm25, tiny, cut = (int(tokens[system, f"q{n}"]) for system in ("bm25", "tiny", "cut"))
        assert bm25 < cut < bm25 + tiny  # bm25 on all six candidates, the bi-encoder on two of them
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    per_system = {system["name"]: system["tokens_per_query"] for system in summary["systems"]}
    assert per_system["BM25 (first stage)"] is None and per_system["cut"] > per_system["bm25"]


def test_eval_long_document_modes_on_the_buried_variant(
    collection: Path, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "long"
    argv = ["eval", str(collection), "--config", str(config), "-m", "tiny", "--bury", "1", "--queries", "2"]
    argv += ["--long-documents", "chunk,truncate_end", "--no-plots", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| tiny [chunk] |" in printed and "| tiny [truncate_end] |" in printed
    assert "each document after 1 unjudged ones" in printed
    assert not (out / "gain.png").exists()


def test_eval_reranks_with_a_late_interaction_model(
    collection: Path, tmp_path: Path, tiny_late_interaction: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = {"name": "colbert", "kind": "late-interaction", "source": str(tiny_late_interaction)}
    config = tmp_path / "colbert.yaml"
    config.write_text(yaml.safe_dump({"models": [model]}), encoding="utf-8")
    out = tmp_path / "out"
    argv = ["eval", str(collection), "--config", str(config), "-m", "colbert", "--top-k", "6"]
    assert main([*argv, "--out", str(out), "--no-plots", "--no-progress"]) == 0
    assert "| colbert |" in capsys.readouterr().out
    with (out / "per_query.csv").open(encoding="utf-8") as rows:
        scored = [row for row in csv.DictReader(rows) if row["system"] == "colbert"]
    assert len(scored) == len(TOPICS) and all(0 <= float(row["NDCG@10"]) <= 1 for row in scored)


def test_eval_bad_input_exits_2_saying_why(
    collection: Path, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(collection), "--config", str(config), "-m", "nope"]) == 2
    assert "model nope not configured; configured: bm25, mix, tiny" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing"), "--config", str(config)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["eval", str(collection), "--config", str(config), "--long-documents", "squash"]) == 2
    assert "squash not one of" in capsys.readouterr().err


def test_weight_grid_sums_to_one() -> None:
    grid = weight_grid(2, 0.25)
    assert grid == [(0.0, 1.0), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25), (1.0, 0.0)]
    assert all(sum(weights) == pytest.approx(1) for weights in weight_grid(3, 0.1))
