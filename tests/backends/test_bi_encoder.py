"""Bi-encoder backend against sentence-transformers on a generated model and the real MiniLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from rerankd.backends.bi_encoder import BiEncoderBackend
from rerankd.config import ModelSpec
from rerankd.types import ScoreOptions

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. "
    "Its capital is Saipan.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) "
    "is the capital of the United States. It is a federal district.",
    "Capitalization or capitalisation in English grammar is the use of a capital letter at the start "
    "of a word.",
    "Capital punishment (the death penalty) has existed in the United States since before the United States "
    "was a country.",
]


def scores_of(path: Path, query: str, documents: list[str]) -> list[float]:
    backend = BiEncoderBackend.load(ModelSpec(name="m", kind="bi-encoder", source=str(path), device="cpu"))
    prepared = backend.prepare(query, documents, ScoreOptions())
    # Odd batch boundaries on purpose: the query and documents are padded with different neighbours.
    outputs = backend.forward(prepared.inputs[:2]) + backend.forward(prepared.inputs[2:])
    return prepared.combine(outputs)


def reference(path: Path, query: str, documents: list[str]) -> list[float]:
    model = SentenceTransformer(str(path), device="cpu")
    q = model.encode([query], normalize_embeddings=True)
    d = model.encode(documents, normalize_embeddings=True, batch_size=2)
    return (d @ q[0]).tolist()


def test_tiny_bi_encoder_equals_sentence_transformers(tiny_bi_encoder: Path) -> None:
    ours = scores_of(tiny_bi_encoder, QUERY, DOCUMENTS)
    assert ours == pytest.approx(reference(tiny_bi_encoder, QUERY, DOCUMENTS), abs=1e-5)


@pytest.mark.slow
def test_real_minilm_ranks_washington_first(minilm_path: Path) -> None:
    ours = scores_of(minilm_path, QUERY, DOCUMENTS)
    assert int(np.argmax(ours)) == 2
    assert ours == pytest.approx(reference(minilm_path, QUERY, DOCUMENTS), abs=1e-5)


@pytest.mark.slow
def test_passage_beyond_the_window_wins_with_chunking_not_with_truncation(minilm_path: Path) -> None:
    sentence = (
        "Knead the dough for ten minutes, let it rise in a warm kitchen, then bake the loaf until golden."
    )
    filler = " ".join([sentence] * 20)
    long_document = filler + " Washington, D.C. is the capital of the United States of America."
    documents = [long_document, DOCUMENTS[0], DOCUMENTS[3]]
    spec = ModelSpec(name="m", kind="bi-encoder", source=str(minilm_path), device="cpu")
    backend = BiEncoderBackend.load(spec)
    assert len(backend.tokenizer(long_document)["input_ids"]) > backend.max_length

    def ranking(options: ScoreOptions) -> list[int]:
        prepared = backend.prepare(QUERY, documents, options)
        scores = prepared.combine(backend.forward(prepared.inputs))
        return sorted(range(len(documents)), key=lambda i: -scores[i])

    assert ranking(ScoreOptions(long_documents="chunk"))[0] == 0
    assert ranking(ScoreOptions(long_documents="truncate_end"))[-1] == 0
