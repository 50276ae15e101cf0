"""The threads layout (``threads_layout``): chosen at load, reported, scores that do not depend on it, and
several workers that neither lose nor repeat an input."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from rerankd.backends.base import Encoded, Prepared
from rerankd.backends.specs import TransformerSpec
from rerankd.backends.threads import default_threads
from rerankd.config import Settings
from rerankd.serving import layout as layouts
from rerankd.serving.metrics import Metrics
from rerankd.serving.pool import ModelPool
from rerankd.serving.scheduler import BatchingScorer, measure_pass_cost
from rerankd.types import Activation, ScoreOptions, ThreadsLayout

OPTIONS = ScoreOptions()
DOCUMENTS = tuple(
    " ".join(["shock wave boundary layer"] * (1 + n % 7)) + f" report {n} on the swept wing"
    for n in range(40)
)


class CountingBackend:
    """Each document's score is its number; records which inputs each pass computed, on which thread,
    and how many passes ran at once."""

    activation: Activation = "identity"
    max_length = 512
    precision = "fp32"
    batch_tokens = 4096

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.computed: list[int] = []
        self.threads: set[str] = set()
        self.running = 0
        self.most_at_once = 0
        self.release = threading.Event()
        self.release.set()
        self.meet: threading.Barrier | None = None  # set: every pass waits for the other workers' passes

    def prepare(self, query: str, documents: Sequence[str], options: ScoreOptions) -> Prepared:
        inputs = [
            Encoded([int(doc.split()[-1]) if doc.split()[-1].isdigit() else 0, *range(len(doc.split()))])
            for doc in documents
        ]
        return Prepared(inputs, 1, [len(doc.split()) for doc in documents], combine=list)

    def forward(self, inputs: Sequence[Encoded]) -> list[float]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads.add(threading.current_thread().name)
        self.release.wait(5)
        if self.meet is not None:
            self.meet.wait(5)
        with self.lock:
            self.running -= 1
            self.computed.extend(int(item.input_ids[0]) for item in inputs)
        return [float(item.input_ids[0]) for item in inputs]


def numbered(count: int, offset: int = 0) -> tuple[str, ...]:
    return tuple(f"document {'w ' * (n % 5)} {offset + n}" for n in range(count))


def parallel(workers: int = 2) -> ThreadsLayout:
    return ThreadsLayout("parallel", workers=workers, threads=1, setting="parallel")


async def test_two_workers_lose_and_repeat_no_input_under_concurrency() -> None:
    backend = CountingBackend()
    scorer = BatchingScorer(
        "m", backend, max_batch_tokens=64, max_batch_size=4, max_queue_pairs=100_000, layout=parallel()
    )
    requests = [numbered(25, offset=100 * r) for r in range(16)]
    results = await asyncio.gather(*(scorer.score("q", docs, OPTIONS) for docs in requests))
    for docs, result in zip(requests, results, strict=True):
        assert result.scores == tuple(float(doc.split()[-1]) for doc in docs)
    counted = Counter(backend.computed)
    assert sorted(counted) == sorted(100 * r + n for r in range(16) for n in range(25))
    assert set(counted.values()) == {1}  # each input computed exactly once
    assert len(backend.threads) == 2  # both workers computed passes
    assert scorer.pending == 0
    await scorer.close()


async def test_two_workers_run_passes_at_the_same_time() -> None:
    """One request of several batches: the workers take its batches side by side, not one after the other."""
    backend = CountingBackend()
    backend.release.clear()
    scorer = BatchingScorer(
        "m", backend, max_batch_tokens=64, max_batch_size=2, max_queue_pairs=1000, layout=parallel()
    )
    task = asyncio.create_task(scorer.score("q", numbered(8), OPTIONS))
    async with asyncio.timeout(5):
        while backend.running < 2:
            await asyncio.sleep(0.005)
    backend.release.set()
    assert (await task).scores == tuple(float(n) for n in range(8))
    assert backend.most_at_once == 2
    assert scorer.info().layout == parallel()
    await scorer.close()


def test_the_pass_cost_is_measured_with_every_worker_running() -> None:
    backend = CountingBackend()
    backend.meet = threading.Barrier(2)  # a pass that ran alone would wait here in vain and fail
    cost = measure_pass_cost(backend, budget=4096, layout=parallel())
    assert cost.per_token > 0
    assert backend.most_at_once == 2 and len(backend.threads) == 2


def test_auto_times_both_layouts_and_says_what_it_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a 2-core machine with a fake backend: auto reports both rates and keeps parallel only when it
    is faster by the margin."""
    monkeypatch.setattr(layouts, "default_threads", lambda: 2)
    backend = CountingBackend()
    chosen = layouts.choose_layout(backend, "auto", budget=4096)
    assert chosen.setting == "auto"
    assert [name for name, _ in chosen.measured] == ["single", "parallel"]
    rates = dict(chosen.measured)
    assert chosen.name == ("parallel" if rates["parallel"] >= layouts.MARGIN * rates["single"] else "single")
    assert (chosen.workers, chosen.threads) == ((2, 1) if chosen.name == "parallel" else (1, 2))
    assert "inputs/s" in chosen.describe()
    assert layouts.choose_layout(backend, "single", 4096) == ThreadsLayout("single", 1, 2, "single")
    assert layouts.choose_layout(backend, "parallel", 4096) == ThreadsLayout("parallel", 2, 1, "parallel")


def test_one_core_or_a_gpu_has_one_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layouts, "default_threads", lambda: 1)
    assert layouts.choose_layout(CountingBackend(), "parallel", 4096).name == "single"
    monkeypatch.setattr(layouts, "default_threads", lambda: 4)
    on_gpu = CountingBackend()
    on_gpu.device = type("Device", (), {"type": "cuda"})()  # type: ignore[attr-defined]
    assert layouts.choose_layout(on_gpu, "auto", 4096) == ThreadsLayout("single", 1, 4, "auto")


@pytest.mark.parametrize("setting", ["single", "parallel", "auto"])
async def test_scores_do_not_depend_on_the_layout(
    tiny_bert: Path, setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The same tiny cross-encoder under each layout: the same scores, the layout in /v1/models' view and
    in the log line that says the model is ready. Each layout packs by its own measured pass cost, and a
    batch of other lengths pads otherwise, which moves fp32 scores in their 7th digit: within 1e-5."""
    spec = TransformerSpec(name="ce", kind="cross-encoder", source=str(tiny_bert))
    baseline = ModelPool(Settings(models=[spec], threads_layout="single"), Metrics())
    pool = ModelPool(Settings(models=[spec], threads_layout=setting), Metrics())  # type: ignore[arg-type]
    try:
        expected = (await (await baseline.scorer("ce")).score("swept wing", DOCUMENTS, OPTIONS)).scores
        with caplog.at_level(logging.INFO, logger="rerankd.serving.pool"):
            scorer = await pool.scorer("ce")
        requests = [scorer.score("swept wing", DOCUMENTS, OPTIONS) for _ in range(4)]
        for result in await asyncio.gather(*requests):
            assert result.scores == pytest.approx(expected, abs=1e-5)
        layout = pool.views()[0].loaded.layout  # type: ignore[union-attr]
        assert layout is not None and layout.setting == setting
        if default_threads() > 1 and setting != "auto":
            assert layout.name == setting
        assert f"threads layout {layout.describe()}" in caplog.text
    finally:
        await pool.close()
        await baseline.close()


def test_a_pass_computes_the_same_on_one_thread_as_on_all(tiny_bert: Path) -> None:
    """The same batch, on one OpenMP thread (a parallel worker) and on torch's own count (single)."""
    from rerankd.backends.threads import use_threads
    from rerankd.kinds import load_model

    backend = load_model(TransformerSpec(name="ce", kind="cross-encoder", source=str(tiny_bert)))
    inputs = backend.prepare("swept wing", DOCUMENTS, OPTIONS).inputs
    outputs: dict[int, list[float]] = {}

    def run(threads: int) -> None:
        use_threads(threads)
        outputs[threads] = backend.forward(inputs)

    for threads in (1, max(2, default_threads())):
        worker = threading.Thread(target=run, args=(threads,))
        worker.start()
        worker.join()
    one, many = outputs.values()
    assert one == pytest.approx(many, abs=1e-6)
