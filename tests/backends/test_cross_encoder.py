"""Cross-encoder backend against sentence-transformers CrossEncoder on generated models (fp32)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sentence_transformers import CrossEncoder

from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.batching import pack
from rerankd.config import ModelSpec

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


def score_batched(
    backend: CrossEncoderBackend, query: str, documents: list[str], budget: int = 10_000
) -> list[float]:
    """Run prepare + forward the way the scheduler does: length-sorted, packed batches."""
    prepared = backend.prepare(query, documents)
    outputs: list[float] = [0.0] * len(prepared.inputs)
    lengths = [len(item) for item in prepared.inputs]
    for batch in pack(lengths, budget, 64):
        for index, value in zip(batch, backend.forward([prepared.inputs[i] for i in batch]), strict=True):
            outputs[index] = value
    return prepared.combine(outputs)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


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
    prepared = backend.prepare(QUERY, [long_document, "short"])
    first = list(prepared.inputs[0].input_ids)
    assert len(first) == 32
    query_ids = backend.tokenizer(QUERY, add_special_tokens=False)["input_ids"]
    assert first[1 : 1 + len(query_ids)] == query_ids  # the whole query survives
    assert prepared.document_tokens[0] == 32 - len(query_ids) - 3
    assert prepared.query_tokens == len(query_ids)


def test_overlong_query_is_cut_to_half_the_window(tiny_bert: Path) -> None:
    backend = load(tiny_bert, max_length=32)
    prepared = backend.prepare(" ".join(["capital"] * 100), ["a document about washington"])
    assert prepared.query_tokens == (32 - 3) // 2
    assert len(prepared.inputs[0]) <= 32
    assert prepared.document_tokens[0] > 0


def test_default_max_length_from_the_model(tiny_xlmr: Path) -> None:
    assert load(tiny_xlmr).max_length == 512  # 514 positions minus the RoBERTa padding offset
