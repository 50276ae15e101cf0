"""Input files for ``rerankd batch``: jobs drawn from the built-in corpus, for tests and benchmarks.

Each job's query is one sentence of the corpus and its documents are others, picked by a seeded
generator: the same arguments give the same file, byte for byte.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from rerankd_support.corpus import training_corpus

__all__ = ["make_jobs", "write_jobs"]


def make_jobs(count: int, documents: int, *, seed: int = 0, first_id: int = 0) -> list[dict[str, Any]]:
    """``count`` jobs of ``documents`` documents each, ids ``q<n>``; every third document is a
    ``{text}`` object, as clients send them."""
    sentences = training_corpus()
    rng = random.Random(seed)
    jobs = []
    for n in range(first_id, first_id + count):
        texts = rng.sample(sentences, documents + 1)
        docs: list[Any] = [{"text": t} if i % 3 == 2 else t for i, t in enumerate(texts[1:])]
        jobs.append({"id": f"q{n}", "query": texts[0], "documents": docs})
    return jobs


def write_jobs(path: Path, jobs: list[dict[str, Any]], *, extra_lines: dict[int, str] | None = None) -> Path:
    """Write jobs as JSONL; ``extra_lines`` puts raw lines (bad ones, say) before the job of that index."""
    extra = extra_lines or {}
    with path.open("w", encoding="utf-8") as file:
        for index, job in enumerate(jobs):
            if index in extra:
                file.write(extra[index] + "\n")
            file.write(json.dumps(job, ensure_ascii=False) + "\n")
    return path
