"""``rerankd batch --engine ray``: two Ray Data actors give the local engine's output, byte for byte; a
resumed run; a tiny transformer scored in an actor as in this process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rerankd_support.batch_jobs import make_jobs, write_jobs

from rerankd.batch.jobs import JobOptions, Pending
from rerankd.batch.run import BatchRun, RayOptions, run_batch
from rerankd.config import load_settings
from rerankd.ray.data import chunks, run_ray

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

TWO_ACTORS = RayOptions(workers=2, num_cpus=1, chunk_pairs=500)


def test_chunks_hold_consecutive_jobs_up_to_their_pairs() -> None:
    pending = [Pending(str(n), n, 0, 1, pairs) for n, pairs in enumerate([200, 200, 200, 900, 50])]
    assert [[job.key for job in chunk] for chunk in chunks(pending, 500)] == [["0", "1"], ["2"], ["3"], ["4"]]


def test_ray_writes_the_bytes_the_local_engine_writes(tmp_path: Path, bm25_config: Path) -> None:
    jobs = make_jobs(150, 20, seed=4)  # 3000 pairs
    source = write_jobs(tmp_path / "in.jsonl", jobs, extra_lines={70: "not a job"})
    settings = load_settings(bm25_config)
    options = JobOptions(model="bm25", top_n=5, return_documents=True)
    local = BatchRun(source, tmp_path / "local.jsonl", options, progress=False)
    on_ray = BatchRun(source, tmp_path / "ray.jsonl", options, engine="ray", ray=TWO_ACTORS, progress=False)
    local_tally = run_batch(settings, local, sys.stderr)
    ray_tally = run_batch(settings, on_ray, sys.stderr, run_ray)
    assert (ray_tally.jobs, ray_tally.pairs, ray_tally.bad_lines) == (150, 3000, 1)
    assert ray_tally.tokens == local_tally.tokens
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()


def test_ray_resumes_an_output_a_killed_run_left(tmp_path: Path, bm25_config: Path) -> None:
    source = write_jobs(tmp_path / "in.jsonl", make_jobs(60, 10, seed=5))
    settings = load_settings(bm25_config)
    options = JobOptions(model="bm25")
    reference = tmp_path / "reference.jsonl"
    run_batch(settings, BatchRun(source, reference, options, progress=False), sys.stderr)
    lines = reference.read_bytes().splitlines(keepends=True)
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"".join(lines[:25]) + lines[25][:17])  # 25 jobs and a torn line
    on_ray = BatchRun(source, out, options, engine="ray", ray=TWO_ACTORS, progress=False)
    tally = run_batch(settings, on_ray, sys.stderr, run_ray)
    assert (tally.jobs, tally.skipped) == (35, 25)
    assert out.read_bytes() == reference.read_bytes()


def test_an_actor_scores_a_transformer_as_the_local_engine_does(tmp_path: Path, tiny_config: Path) -> None:
    source = write_jobs(tmp_path / "in.jsonl", make_jobs(40, 10, seed=6))
    settings = load_settings(tiny_config)
    options = JobOptions(model="tiny", top_n=3)
    run_batch(settings, BatchRun(source, tmp_path / "local.jsonl", options, progress=False), sys.stderr)
    ray = RayOptions(workers=1, num_cpus=1, chunk_pairs=100)  # one torch actor: this machine has 2 cores
    run = BatchRun(source, tmp_path / "ray.jsonl", options, engine="ray", ray=ray, progress=False)
    run_batch(settings, run, sys.stderr, run_ray)
    local = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    on_ray = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert [(a["id"], a["usage"]) for a in on_ray] == [(b["id"], b["usage"]) for b in local]
    for a, b in zip(on_ray, local, strict=True):
        # Other chunks, other passes: a transformer's float32 scores may differ in their last bits.
        assert [r["relevance_score"] for r in a["results"]] == pytest.approx(
            [r["relevance_score"] for r in b["results"]], rel=1e-5, abs=1e-6
        )
