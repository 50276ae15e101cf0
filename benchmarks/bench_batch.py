"""Throughput of ``rerankd batch``: the local engine against Ray Data with 1 and 2 actors, in pairs/s.

One input file (``--jobs`` jobs of ``--documents`` corpus sentences each) and one model: a MiniLM-L6
shaped cross-encoder with random weights (``rerankd_support.models``; real compute, meaningless scores)
in fp32, or ``--model bm25``. Each mode runs the whole command path (``run_batch``: scan, score, write in
order) into a fresh output; the time includes loading the model in every actor, not starting Ray, which
is started once before the Ray modes (as on a cluster that is already up). Ray actors get ``num_cpus``
CPUs each and torch uses that many threads in them; the local engine uses every core.

    .venv/bin/python benchmarks/bench_batch.py --jobs 200 --documents 50
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from rerankd_support.batch_jobs import make_jobs, write_jobs
from rerankd_support.models import bundled_minilm_path, make_cross_encoder

from rerankd.batch.jobs import JobOptions
from rerankd.batch.run import BatchRun, Engine, RayOptions, Runner, run_batch
from rerankd.config import load_settings

# (label, engine, actors, CPUs per actor)
MODES: list[tuple[str, Engine, int, float]] = [
    ("local (one process, every core)", "local", 0, 0),
    ("Ray Data, 1 actor x 1 CPU", "ray", 1, 1),
    ("Ray Data, 1 actor x 2 CPUs", "ray", 1, 2),
    ("Ray Data, 2 actors x 1 CPU", "ray", 2, 1),
]


def model_entry(kind: str, workdir: Path) -> dict[str, Any]:
    if kind == "bm25":
        return {"name": "bm25", "kind": "bm25"}
    path = make_cross_encoder(workdir / "minilm-l6", arch="minilm-l6", tokenizer_from=bundled_minilm_path())
    return {"name": "minilm-l6", "kind": "cross-encoder", "source": str(path), "dtype": "fp32"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--documents", type=int, default=50, help="documents per job")
    parser.add_argument("--model", choices=["minilm-l6", "bm25"], default="minilm-l6")
    parser.add_argument("--chunk-pairs", type=int, default=2048)
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        workdir = Path(tmp)
        entry = model_entry(args.model, workdir)
        config = workdir / "config.yaml"
        config.write_text(yaml.safe_dump({"database_url": "none", "models": [entry]}), encoding="utf-8")
        settings = load_settings(config)
        source = write_jobs(workdir / "in.jsonl", make_jobs(args.jobs, args.documents, seed=7))
        options = JobOptions(model=entry["name"], top_n=10)
        rows: list[dict[str, Any]] = []
        ray_started = False
        for label, engine, actors, per_actor in MODES:
            if engine == "ray" and actors * per_actor > cpus:
                continue
            if engine == "ray" and not ray_started:
                import ray

                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
                ray_started = True
            ray_options = RayOptions(
                workers=max(1, actors), num_cpus=per_actor or 1, chunk_pairs=args.chunk_pairs
            )
            out = workdir / f"out-{len(rows)}.jsonl"
            run = BatchRun(source, out, options, engine=engine, ray=ray_options, progress=False)
            began = time.perf_counter()
            runner: Runner | None = None
            if engine == "ray":
                from rerankd.ray.data import run_ray

                runner = run_ray
            tally = run_batch(settings, run, sys.stderr, runner)
            seconds = time.perf_counter() - began
            assert tally.ok and tally.jobs == args.jobs, tally.summary()
            rows.append(
                {
                    "mode": label,
                    "pairs": tally.pairs,
                    "seconds": seconds,
                    "pairs_per_s": tally.pairs / seconds,
                }
            )
            print(
                f"{label}: {tally.pairs} pairs in {seconds:.1f}s = {tally.pairs / seconds:.0f} pairs/s",
                file=sys.stderr,
            )
        if ray_started:
            import ray

            ray.shutdown()
    print(f"\n{args.model}, {args.jobs} jobs x {args.documents} documents, {cpus} CPUs\n")
    print("| mode | pairs | seconds | pairs/s |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['pairs']} | {row['seconds']:.1f} | {row['pairs_per_s']:.0f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": args.model, "cpus": cpus, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
