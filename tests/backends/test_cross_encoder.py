"""Cross-encoder backend against sentence-transformers CrossEncoder on generated models (fp32)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentence_transformers import CrossEncoder

from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.config import ModelSpec
from rerankd.errors import InvalidRequest
from rerankd.types import ScoreOptions

from .scoring import score_batched, sigmoid

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
    "Capitalization in English grammar is the use of a capital letter at the start of a word.",
    "short",
    "华盛顿特区是美国的首都",
    "",
]


def load(path: Path, **fields: object) -> CrossEncoderBackend:
    return CrossEncoderBackend.load(
        ModelSpec(name="m", kind="cross-encoder", source=str(path), device="cpu", **fields)
    )


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_xlmr", "tiny_bert_two_labels"])
def test_scores_equal_sentence_transformers(model: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model)
    backend = load(path)
    ours = [sigmoid(s) for s in score_batched(backend, QUERY, DOCUMENTS, budget=64)]
    reference = CrossEncoder(str(path), device="cpu")
    pairs = [(QUERY, doc) for doc in DOCUMENTS]
    if backend.num_labels == 1:
        theirs = reference.predict(pairs, batch_size=3).tolist()
    else:  # two labels: the probability of the positive label
        theirs = reference.predict(pairs, batch_size=3, apply_softmax=True)[:, 1].tolist()
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert max(ours) - min(ours) > 1e-4  # the generated model is not degenerate


def test_batch_composition_does_not_change_scores(tiny_xlmr: Path) -> None:
    backend = load(tiny_xlmr)
    alone = [score_batched(backend, QUERY, [doc])[0] for doc in DOCUMENTS]
    together = score_batched(backend, QUERY, DOCUMENTS)
    assert together == pytest.approx(alone, abs=1e-5)


def test_only_the_document_is_truncated(tiny_bert: Path) -> None:
    backend = load(tiny_bert, max_length=32)
    long_document = " ".join(["aerodynamics of a wing"] * 40)
    prepared = backend.prepare(QUERY, [long_document, "short"], ScoreOptions(long_documents="truncate_end"))
    first = list(prepared.inputs[0].input_ids)
    assert len(first) == 32
    query_ids = backend.tokenizer(QUERY, add_special_tokens=False)["input_ids"]
    assert first[1 : 1 + len(query_ids)] == query_ids  # the whole query survives
    assert prepared.document_tokens[0] == 32 - len(query_ids) - 3
    assert prepared.query_tokens == len(query_ids)


def test_overlong_query_is_cut_to_half_the_window(tiny_bert: Path) -> None:
    backend = load(tiny_bert, max_length=32)
    prepared = backend.prepare(" ".join(["capital"] * 100), ["a document about washington"], ScoreOptions())
    assert prepared.query_tokens == (32 - 3) // 2
    assert len(prepared.inputs[0]) <= 32
    assert prepared.document_tokens[0] > 0


def test_default_max_length_from_the_model(tiny_xlmr: Path) -> None:
    assert load(tiny_xlmr).max_length == 512  # 514 positions minus the RoBERTa padding offset


def test_long_documents_are_chunked_with_overlap_and_score_as_their_best_window(tiny_bert: Path) -> None:
    backend = load(tiny_bert, max_length=32, overlap_tokens=4, max_chunks_per_doc=50)
    words = " ".join(f"w{i}" for i in range(60))
    prepared = backend.prepare("capital", [words, "short"], ScoreOptions())
    query_ids = backend.tokenizer("capital", add_special_tokens=False)["input_ids"]
    budget = 32 - 3 - len(query_ids)
    document_ids = backend.tokenizer(words, add_special_tokens=False)["input_ids"]
    windows = [list(item.input_ids)[1 + len(query_ids) + 1 : -1] for item in prepared.inputs[:-1]]
    assert all(len(window) <= budget for window in windows)
    assert windows[0] == document_ids[:budget]
    assert windows[1][:4] == windows[0][-4:]  # neighbours share the overlap
    assert windows[-1][-1] == document_ids[-1]  # the whole document is covered
    assert prepared.chunks == [len(windows), 1]
    assert prepared.document_tokens[0] == sum(len(window) for window in windows)
    outputs = backend.forward(prepared.inputs)
    assert prepared.combine(outputs) == [max(outputs[:-1]), outputs[-1]]


def test_chunk_limit_and_per_request_choices(tiny_bert: Path) -> None:
    backend = load(tiny_bert, max_length=32)
    words = " ".join(f"w{i}" for i in range(200))
    assert backend.prepare("q", [words], ScoreOptions(max_chunks_per_doc=3)).chunks == [3]
    cut = backend.prepare("q", [words], ScoreOptions(max_tokens_per_doc=10))
    assert cut.chunks == [1] and cut.document_tokens == [10]
    start = backend.prepare("q", [words], ScoreOptions(long_documents="truncate_start"))
    document_ids = backend.tokenizer(words, add_special_tokens=False)["input_ids"]
    assert list(start.inputs[0].input_ids)[-2] == document_ids[-1]
    with pytest.raises(InvalidRequest, match="document 0 has"):
        backend.prepare("q", [words], ScoreOptions(long_documents="error"))
