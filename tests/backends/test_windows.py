"""Long documents: full-length windows (the last one ends at the document's end), how window scores
combine into a document's score, and each window's character range in the document as sent."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from rerankd.backends.base import Windows
from rerankd.backends.bi_encoder import BiEncoderBackend
from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.backends.specs import TransformerSpec
from rerankd.backends.windows import window_starts
from rerankd.types import ScoreOptions, Span


def load_cross_encoder(path: Path, **settings: object) -> CrossEncoderBackend:
    spec = {"name": "m", "kind": "cross-encoder", "source": str(path), "device": "cpu", "dtype": "fp32"}
    return CrossEncoderBackend.load(TransformerSpec.model_validate({**spec, **settings}))


@pytest.mark.parametrize(
    ("length", "budget", "overlap", "max_chunks"),
    [(10, 10, 2, 5), (11, 10, 2, 5), (95, 20, 4, 50), (100, 20, 0, 50), (1000, 20, 4, 3), (21, 20, 30, 5)],
)
def test_windows_are_full_length_and_cover_the_document(
    length: int, budget: int, overlap: int, max_chunks: int
) -> None:
    starts = window_starts(length, budget, overlap, max_chunks)
    assert starts[0] == 0 and len(starts) <= max_chunks
    assert all(0 <= start and start + min(budget, length) <= length for start in starts)
    shared = min(overlap, budget // 2)
    # Neighbours share at least the overlap (more for the last window, moved back to end at the end).
    assert all(later - earlier <= budget - shared for earlier, later in itertools.pairwise(starts))
    assert starts == sorted(set(starts))
    if len(starts) < max_chunks:
        assert starts[-1] + min(budget, length) == length  # the end of the document is scored


def test_document_scores_mix_the_best_and_the_first_window() -> None:
    owner = [0, 0, 0, 1, 2, 2]
    scores = [0.2, 0.9, 0.5, 0.7, -1.0, -3.0]
    spans = [(0, 5)] * len(owner)
    best = Windows(owner, spans, 3, best_weight=1.0).document_scores(scores)
    first = Windows(owner, spans, 3, best_weight=0.0).document_scores(scores)
    mixed = Windows(owner, spans, 3, best_weight=0.25).document_scores(scores)
    assert best == [0.9, 0.7, -1.0]
    assert first == [0.2, 0.7, -1.0]
    assert mixed == pytest.approx([0.25 * 0.9 + 0.75 * 0.2, 0.7, -1.0])  # one window: its own score


def test_best_spans_name_each_documents_best_window() -> None:
    windows = Windows([0, 0, 1], [(0, 10), (8, 20), (0, 3)], 3)
    assert windows.best_spans([0.1, 0.4, 0.3]) == [Span(8, 20, 0.4), Span(0, 3, 0.3), None]


def test_cross_encoder_windows_are_full_length(tiny_bert: Path) -> None:
    backend = load_cross_encoder(tiny_bert, max_length=32, overlap_tokens=4, max_chunks_per_doc=50)
    words = " ".join(f"w{i}" for i in range(61))
    prepared = backend.prepare("capital", [words], ScoreOptions())
    query_ids = backend.tokenizer("capital", add_special_tokens=False)["input_ids"]
    document_ids = backend.tokenizer(words, add_special_tokens=False)["input_ids"]
    budget = 32 - 3 - len(query_ids)
    windows = [list(item.input_ids)[2 + len(query_ids) : -1] for item in prepared.inputs]
    assert all(len(window) == budget for window in windows)
    assert windows[-1] == document_ids[-budget:]


TEXTS = [
    "空气动力学研究机翼周围的气流。 Boundary layers separate at high angles of attack; "
    "the wake behind the wing grows. Émile measured lift at Mach 0.8 near the trailing edge. "
    "后缘附近的压力分布决定了升力。",
    "short text",
    "",
]


@pytest.mark.parametrize("kind", ["cross-encoder", "bi-encoder"])
def test_spans_are_the_windows_character_ranges_in_multibyte_text(
    kind: str, tiny_bert: Path, tiny_bi_encoder: Path
) -> None:
    settings = {"max_length": 24, "overlap_tokens": 3, "max_chunks_per_doc": 50}
    if kind == "cross-encoder":
        backend: CrossEncoderBackend | BiEncoderBackend = load_cross_encoder(tiny_bert, **settings)
    else:
        spec = {"name": "m", "kind": kind, "source": str(tiny_bi_encoder), "device": "cpu", **settings}
        backend = BiEncoderBackend.load(TransformerSpec.model_validate(spec))
    query = "机翼 lift"
    prepared = backend.prepare(query, TEXTS, ScoreOptions())
    assert prepared.windows is not None and prepared.chunks is not None
    assert prepared.chunks[0] > 2
    rust = backend.windows.rust
    if kind == "cross-encoder":  # [CLS] query [SEP] window [SEP]
        skip, inputs = 2 + len(rust.encode(query, add_special_tokens=False).ids), prepared.inputs
    else:  # [CLS] window [SEP], after the query's own input
        skip, inputs = 1, prepared.inputs[1:]
    spans: dict[int, list[tuple[int, int]]] = {}
    for item, owner, span in zip(inputs, prepared.windows.owner, prepared.windows.spans, strict=True):
        whole = rust.encode(TEXTS[owner], add_special_tokens=False)
        window = list(item.input_ids)[skip:-1]
        # where the window lies in the document's tokens (the first match at or after the previous one)
        at = next(k for k in range(len(whole.ids) + 1) if whole.ids[k : k + len(window)] == window)
        expected = (whole.offsets[at][0], whole.offsets[at + len(window) - 1][1]) if window else (0, 0)
        assert span == expected
        spans.setdefault(owner, []).append(span)
    # Offsets count characters, not UTF-8 bytes: the last window ends exactly at the text's end.
    assert spans[0][0][0] == 0 and spans[0][-1][1] == len(TEXTS[0])
    assert TEXTS[0][spans[0][-1][0] : spans[0][-1][1]].endswith("升力。")
    assert spans[1] == [(0, len(TEXTS[1]))] and spans[2] == [(0, 0)]


@pytest.mark.slow
def test_span_finds_the_relevant_passage_in_a_later_window(minilm_path: Path) -> None:
    spec = {"name": "m", "kind": "bi-encoder", "source": str(minilm_path), "device": "cpu", "dtype": "fp32"}
    backend = BiEncoderBackend.load(
        TransformerSpec.model_validate({**spec, "max_length": 32, "best_window_weight": 1.0})
    )
    filler = "The committee met on Tuesday to discuss the budget for the new library building. " * 4
    passage = "Washington, D.C. is the capital of the United States."
    document = filler + passage + " " + filler
    query = "What is the capital of the United States?"
    prepared = backend.prepare(query, [document], ScoreOptions())
    outputs = backend.forward(prepared.inputs)
    spans = prepared.spans(outputs)
    assert spans is not None and spans[0] is not None
    start, end = spans[0].start, spans[0].end
    assert start > 0  # a later window
    assert start <= document.index("capital") < end
    assert prepared.combine(outputs) == [spans[0].score]  # the best window is the document's score
