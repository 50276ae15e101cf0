"""Cross-encoder backend against sentence-transformers CrossEncoder on generated models.

Parity with sentence-transformers (to 1e-5) holds in fp32, so those tests pin ``dtype: fp32``: ``auto``
means bf16 on CPUs with AMX or AVX512-BF16. bf16 has tests of its own: it ranks like fp32.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sentence_transformers import CrossEncoder

from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.backends.specs import TransformerSpec
from rerankd.errors import InvalidRequest
from rerankd.types import ScoreOptions

from .scoring import assert_ranks_alike, score_batched, sigmoid

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
    "Capitalization in English grammar is the use of a capital letter at the start of a word.",
    "short",
    "华盛顿特区是美国的首都",
    "",
]
# How far bf16 may move a raw score (a logit) from fp32; seen: up to 0.085 on the generated models
# (AMX and AVX2 kernels), whose random weights amplify rounding more than trained ones do.
BF16_LOGIT_TOLERANCE = 0.15


def load(path: Path, **fields: object) -> CrossEncoderBackend:
    return CrossEncoderBackend.load(
        TransformerSpec.model_validate(
            {"name": "m", "kind": "cross-encoder", "source": str(path), "device": "cpu", **fields}
        )
    )


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_xlmr", "tiny_bert_two_labels"])
def test_scores_equal_sentence_transformers(model: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model)
    backend = load(path, dtype="fp32")
    ours = [sigmoid(s) for s in score_batched(backend, QUERY, DOCUMENTS, budget=64)]
    reference = CrossEncoder(str(path), device="cpu", model_kwargs={"dtype": torch.float32})
    pairs = [(QUERY, doc) for doc in DOCUMENTS]
    if backend.num_labels == 1:
        theirs = reference.predict(pairs, batch_size=3).tolist()
    else:  # two labels: the probability of the positive label
        theirs = reference.predict(pairs, batch_size=3, apply_softmax=True)[:, 1].tolist()
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert max(ours) - min(ours) > 1e-4  # the generated model is not degenerate


def test_batch_composition_does_not_change_scores(tiny_xlmr: Path) -> None:
    backend = load(tiny_xlmr, dtype="fp32")
    alone = [score_batched(backend, QUERY, [doc])[0] for doc in DOCUMENTS]
    together = score_batched(backend, QUERY, DOCUMENTS)
    assert together == pytest.approx(alone, abs=1e-5)


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_xlmr", "tiny_bert_two_labels"])
def test_bf16_ranks_like_fp32(model: str, request: pytest.FixtureRequest) -> None:
    # Emulated where the CPU lacks bf16 (slower, same rounding): this runs on every machine.
    path = request.getfixturevalue(model)
    fp32 = score_batched(load(path, dtype="fp32"), QUERY, DOCUMENTS, budget=64)
    bf16 = score_batched(load(path, dtype="bf16"), QUERY, DOCUMENTS, budget=64)
    assert bf16 != fp32  # it did compute in bf16
    assert_ranks_alike(fp32, bf16, tolerance=BF16_LOGIT_TOLERANCE)


def test_bf16_batch_composition_moves_scores_only_by_rounding(tiny_xlmr: Path) -> None:
    # In bf16 a document's score depends a little on its batch-mates (padding width, kernel blocking).
    backend = load(tiny_xlmr, dtype="bf16")
    alone = [score_batched(backend, QUERY, [doc])[0] for doc in DOCUMENTS]
    together = score_batched(backend, QUERY, DOCUMENTS)
    assert_ranks_alike(alone, together, tolerance=BF16_LOGIT_TOLERANCE)


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


def test_long_documents_are_chunked_with_overlap_and_scored_from_their_windows(tiny_bert: Path) -> None:
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
    weight = backend.spec.best_window_weight  # the best window, mixed with the first (Windows)
    expected = weight * max(outputs[:-1]) + (1 - weight) * outputs[0]
    assert prepared.combine(outputs) == [pytest.approx(expected), outputs[-1]]


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
