"""Bi-encoder backend against sentence-transformers on a generated model and the real MiniLM.

Parity with sentence-transformers (to 1e-5) holds in fp32, so those tests pin ``dtype: fp32``: ``auto``
means bf16 on CPUs with AMX or AVX512-BF16. bf16 has tests of its own: it ranks like fp32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from rerankd.backends.bi_encoder import BiEncoderBackend
from rerankd.backends.specs import TransformerSpec
from rerankd.types import ScoreOptions

from .scoring import assert_ranks_alike, ranking

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
# How far bf16 may move a cosine from fp32; seen: up to 0.003 (MiniLM and the generated model).
BF16_COSINE_TOLERANCE = 2e-2


def load(path: Path, dtype: str) -> BiEncoderBackend:
    return BiEncoderBackend.load(
        TransformerSpec.model_validate(
            {"name": "m", "kind": "bi-encoder", "source": str(path), "device": "cpu", "dtype": dtype}
        )
    )


def scores_of(path: Path, query: str, documents: list[str], *, dtype: str) -> list[float]:
    backend = load(path, dtype)
    prepared = backend.prepare(query, documents, ScoreOptions())
    # Odd batch boundaries on purpose: the query and documents are padded with different neighbours.
    outputs = backend.forward(prepared.inputs[:2]) + backend.forward(prepared.inputs[2:])
    return prepared.combine(outputs)


def reference(path: Path, query: str, documents: list[str]) -> list[float]:
    model = SentenceTransformer(str(path), device="cpu", model_kwargs={"dtype": torch.float32})
    q = model.encode([query], normalize_embeddings=True)
    d = model.encode(documents, normalize_embeddings=True, batch_size=2)
    return (d @ q[0]).tolist()


def test_tiny_bi_encoder_equals_sentence_transformers(tiny_bi_encoder: Path) -> None:
    ours = scores_of(tiny_bi_encoder, QUERY, DOCUMENTS, dtype="fp32")
    assert ours == pytest.approx(reference(tiny_bi_encoder, QUERY, DOCUMENTS), abs=1e-5)


@pytest.mark.slow
def test_real_minilm_ranks_washington_first(minilm_path: Path) -> None:
    ours = scores_of(minilm_path, QUERY, DOCUMENTS, dtype="fp32")
    assert int(np.argmax(ours)) == 2
    assert ours == pytest.approx(reference(minilm_path, QUERY, DOCUMENTS), abs=1e-5)


# bf16 is emulated where the CPU lacks it (slower, same rounding): these run on every machine.


def test_tiny_bi_encoder_in_bf16_ranks_like_fp32(tiny_bi_encoder: Path) -> None:
    ours = scores_of(tiny_bi_encoder, QUERY, DOCUMENTS, dtype="bf16")
    fp32 = reference(tiny_bi_encoder, QUERY, DOCUMENTS)
    assert ours != pytest.approx(fp32, abs=1e-6)  # it did compute in bf16
    assert_ranks_alike(fp32, ours, tolerance=BF16_COSINE_TOLERANCE)


@pytest.mark.slow
def test_real_minilm_in_bf16_ranks_like_fp32(minilm_path: Path) -> None:
    ours = scores_of(minilm_path, QUERY, DOCUMENTS, dtype="bf16")
    fp32 = reference(minilm_path, QUERY, DOCUMENTS)
    assert ours != pytest.approx(fp32, abs=1e-6)  # it did compute in bf16
    assert_ranks_alike(fp32, ours, tolerance=BF16_COSINE_TOLERANCE)
    assert ranking(ours) == ranking(fp32)  # a trained model's scores here are 0.03+ apart
    assert ranking(ours)[0] == 2


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_passage_beyond_the_window_wins_with_chunking_not_with_truncation(
    minilm_path: Path, dtype: str
) -> None:
    sentence = (
        "Knead the dough for ten minutes, let it rise in a warm kitchen, then bake the loaf until golden."
    )
    filler = " ".join([sentence] * 20)
    # Windows are full length, so the last one holds filler too: the passage is a paragraph, as relevant
    # text in a long document is, not one sentence that a window of filler would drown.
    passage = (
        " Washington, D.C. is the capital of the United States of America. The capital of the United States"
        " is home to Congress, the White House and the Supreme Court. As the federal capital, Washington"
        " is where the United States government sits."
    )
    long_document = filler + passage
    documents = [long_document, DOCUMENTS[0], DOCUMENTS[3]]
    backend = load(minilm_path, dtype)
    assert len(backend.tokenizer(long_document)["input_ids"]) > backend.max_length

    def scored(options: ScoreOptions) -> list[float]:
        prepared = backend.prepare(QUERY, documents, options)
        scores: list[float] = prepared.combine(backend.forward(prepared.inputs))
        return scores

    # The last full-length window (filler and the passage) scores 0.37 in fp32, against -0.03 for the
    # opening; the default mix (best_window_weight 0.5) gives 0.17. A short relevant document (Carson
    # City, 0.42) may still rank above it, as it should.
    chunked, truncated = (
        scored(ScoreOptions(long_documents="chunk")),
        scored(ScoreOptions(long_documents="truncate_end")),
    )
    assert chunked[0] > truncated[0] + 0.15
    assert ranking(truncated)[-1] == 0
