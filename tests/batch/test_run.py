"""``rerankd batch`` on the local engine: the Reranker's own answers, in input order; bad lines and
failed jobs reported and skipped; --fail-fast; resuming after a run killed midway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rerankd_support.batch_jobs import make_jobs, write_jobs

from rerankd.batch.jobs import JobOptions, parse_job, render
from rerankd.batch.run import BatchRun, run_batch
from rerankd.config import load_settings
from rerankd.serving.reranker import Reranker

from .conftest import write_config


def rerankd_batch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RERANKD_")}
    command = [sys.executable, "-m", "rerankd", "batch", *map(str, args), "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def expected(config: Path, jobs: list[dict[str, Any]], options: JobOptions) -> list[str]:
    """Each job ranked alone by a Reranker, rendered as batch renders it."""
    with Reranker.from_config(config, model=options.model) as reranker:
        lines = []
        for number, job in enumerate(jobs, start=1):
            parsed = parse_job(json.dumps(job), number)
            top_n = parsed.top_n if parsed.top_n is not None else options.top_n
            ranking = reranker.rerank(
                parsed.query, parsed.documents, top_n=top_n, return_documents=options.return_documents
            )
            lines.append(render(parsed, ranking))
    return lines


def test_every_job_is_written_in_input_order_with_the_rerankers_scores(
    tmp_path: Path, bm25_config: Path
) -> None:
    jobs = make_jobs(120, 10, seed=1)
    jobs[5]["top_n"] = 2  # a line's own top_n wins over --top-n
    source = write_jobs(tmp_path / "in.jsonl", jobs)
    options = JobOptions(model="bm25", top_n=4, return_documents=True)
    run = BatchRun(source, tmp_path / "out.jsonl", options, progress=False)
    tally = run_batch(load_settings(bm25_config), run, sys.stderr)
    assert (tally.jobs, tally.pairs, tally.failed, tally.bad_lines) == (120, 1200, 0, 0)
    written = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert written == expected(bm25_config, jobs, options)
    assert len(json.loads(written[5])["results"]) == 2
    assert tally.tokens == sum(json.loads(line)["usage"]["total_tokens"] for line in written)


def test_a_transformer_gives_the_scores_it_gives_alone(tmp_path: Path, tiny_config: Path) -> None:
    jobs = make_jobs(40, 8, seed=2)
    source = write_jobs(tmp_path / "in.jsonl", jobs)
    options = JobOptions(model="tiny")
    run_batch(
        load_settings(tiny_config),
        BatchRun(source, tmp_path / "out.jsonl", options, progress=False),
        sys.stderr,
    )
    got = read_lines(tmp_path / "out.jsonl")
    want = [json.loads(line) for line in expected(tiny_config, jobs, options)]
    assert [g["id"] for g in got] == [w["id"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g["usage"] == w["usage"]
        # Packed with other jobs, an input may be padded differently: float32 rounding, no more.
        by_index = {r["index"]: r["relevance_score"] for r in w["results"]}
        assert [r["relevance_score"] for r in g["results"]] == pytest.approx(
            [by_index[r["index"]] for r in g["results"]], rel=1e-5, abs=1e-6
        )


def test_bad_lines_are_reported_with_their_numbers_and_skipped(tmp_path: Path, bm25_config: Path) -> None:
    jobs = make_jobs(6, 3)
    source = write_jobs(
        tmp_path / "in.jsonl", jobs, extra_lines={2: "{broken", 4: '{"id": "x", "query": "q"}'}
    )
    result = rerankd_batch(source, "-o", tmp_path / "out.jsonl", "--config", bm25_config)
    assert result.returncode == 1, result.stderr
    assert "line 3: not valid JSON" in result.stderr
    assert "line 6: needs `documents`" in result.stderr
    assert "6 jobs ranked, 18 pairs" in result.stderr and "pairs/s" in result.stderr
    assert "2 bad lines" in result.stderr
    assert [line["id"] for line in read_lines(tmp_path / "out.jsonl")] == [job["id"] for job in jobs]


def test_fail_fast_stops_before_any_work(tmp_path: Path, bm25_config: Path) -> None:
    source = write_jobs(tmp_path / "in.jsonl", make_jobs(4, 3), extra_lines={3: "[]"})
    result = rerankd_batch(source, "-o", tmp_path / "out.jsonl", "--config", bm25_config, "--fail-fast")
    assert result.returncode == 1
    assert "line 4: a job is a JSON object, not list" in result.stderr
    assert not (tmp_path / "out.jsonl").exists() or not (tmp_path / "out.jsonl").read_text()


def test_the_run_cannot_start_without_its_model_or_input(tmp_path: Path, bm25_config: Path) -> None:
    source = write_jobs(tmp_path / "in.jsonl", make_jobs(1, 2))
    result = rerankd_batch(source, "-o", tmp_path / "out.jsonl", "--config", bm25_config, "--model", "nope")
    assert result.returncode == 2
    assert "model 'nope' is not configured; available models: bm25" in result.stderr
    result = rerankd_batch(tmp_path / "missing.jsonl", "-o", tmp_path / "out.jsonl", "--config", bm25_config)
    assert result.returncode == 2
    assert "missing.jsonl does not exist" in result.stderr


def test_a_failed_job_is_skipped_and_a_rerun_completes_the_output_in_input_order(
    tmp_path: Path,
) -> None:
    jobs = make_jobs(5, 3)
    jobs[1] = make_jobs(1, 8, first_id=1)[0]  # more documents than max_documents allows
    source = write_jobs(tmp_path / "in.jsonl", jobs)
    out = tmp_path / "out.jsonl"
    model = [{"name": "bm25", "kind": "bm25"}]
    strict = load_settings(write_config(tmp_path / "strict.yaml", model, max_documents=5))
    run = BatchRun(source, out, JobOptions(model="bm25"), progress=False)
    tally = run_batch(strict, run, sys.stderr)
    assert (tally.jobs, tally.failed) == (4, 1)
    assert [line["id"] for line in read_lines(out)] == ["q0", "q2", "q3", "q4"]
    tally = run_batch(load_settings(write_config(tmp_path / "loose.yaml", model)), run, sys.stderr)
    assert (tally.jobs, tally.skipped, tally.failed) == (1, 4, 0)
    assert [line["id"] for line in read_lines(out)] == ["q0", "q1", "q2", "q3", "q4"]


def test_a_killed_run_resumes_where_it_stopped(tmp_path: Path, bm25_config: Path) -> None:
    source = write_jobs(tmp_path / "in.jsonl", make_jobs(400, 20, seed=3))
    reference = tmp_path / "reference.jsonl"
    assert rerankd_batch(source, "-o", reference, "--config", bm25_config).returncode == 0
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RERANKD_")}
    command = [
        sys.executable,
        "-m",
        "rerankd",
        "batch",
        str(source),
        "-o",
        str(out),
        "--config",
        str(bm25_config),
    ]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 20):
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be interrupted"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = out.read_text(encoding="utf-8").count("\n")
    assert 20 <= done_before < 400
    result = rerankd_batch(source, "-o", out, "--config", bm25_config)
    assert result.returncode == 0, result.stderr
    assert f"{400 - done_before} jobs ranked" in result.stderr
    assert f"{done_before} already in the output" in result.stderr
    assert out.read_bytes() == reference.read_bytes()
