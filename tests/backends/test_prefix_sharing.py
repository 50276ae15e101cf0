"""Prefix sharing in the LLM reranker: the keys and values of the tokens every row of a batch begins with
are computed once, and each row's document and the prompt's end run on top of them. Exact in fp32: within
1e-4 of every row computed in full, and of each row alone (no padding), for queries of about 16, 64 and 256
tokens and batches whose rows differ in length (left padding inside the rows' own part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerankd.backends.base import Encoded
from rerankd.backends.llm_reranker import MIN_SHARED_PREFIX, LlmRerankerBackend, shared_prefix_length
from rerankd.backends.specs import LlmRerankerSpec
from rerankd.types import ScoreOptions

WORDS = "pressure distribution swept wing high mach number boundary layer shock".split()
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def backend(tiny_qwen3_reranker: Path) -> LlmRerankerBackend:
    spec = LlmRerankerSpec(name="m", kind="llm-reranker", source=str(tiny_qwen3_reranker), dtype="fp32")
    return LlmRerankerBackend.load(spec)


def text_of(backend: LlmRerankerBackend, tokens: int, offset: int = 0) -> str:
    """Words that make about ``tokens`` tokens of this model's tokenizer."""
    words: list[str] = []
    while len(backend.rust.encode(" ".join(words), add_special_tokens=False).ids) < tokens:
        words.append(WORDS[(len(words) + offset) % len(WORDS)])
    return " ".join(words)


def full_rows(backend: LlmRerankerBackend, inputs: list[Encoded]) -> list[float]:
    backend.share_prefix = False
    try:
        return backend.forward(inputs)
    finally:
        backend.share_prefix = True


@pytest.mark.parametrize("query_tokens", [16, 64, 256])
def test_sharing_equals_full_rows_and_rows_alone(backend: LlmRerankerBackend, query_tokens: int) -> None:
    query = text_of(backend, query_tokens)
    # Lengths from 1 to about 300 tokens in one batch: the short rows are mostly padding; two rows alike.
    documents = ["a", text_of(backend, 8, 3), text_of(backend, 128, 1), text_of(backend, 300, 2), "a"]
    inputs = backend.prepare(query, documents, ScoreOptions()).inputs
    shared = shared_prefix_length(inputs)
    # The whole prompt up to the document is shared, the query with it.
    assert shared >= query_tokens + MIN_SHARED_PREFIX
    assert len({len(item) for item in inputs}) == 4
    together = backend.forward(inputs)
    assert backend.share_prefix  # the shared path ran and did not fall back to full rows
    assert together == pytest.approx(full_rows(backend, inputs), abs=TOLERANCE)
    alone = [backend.forward([item])[0] for item in inputs]
    assert together == pytest.approx(alone, abs=TOLERANCE)
    assert together[0] == together[-1]  # the same row, the same score
    assert max(together) - min(together) > 1e-3  # the rows really differ: the test is not vacuous


def test_requests_of_different_queries_share_the_instruction(backend: LlmRerankerBackend) -> None:
    """Two requests in one batch: only the system prompt and the instruction are shared."""
    first = backend.prepare(text_of(backend, 64), [text_of(backend, 128), "b"], ScoreOptions()).inputs
    second = backend.prepare(text_of(backend, 16, 5), [text_of(backend, 40, 4)], ScoreOptions()).inputs
    inputs = [*first, *second]
    assert MIN_SHARED_PREFIX <= shared_prefix_length(inputs) < shared_prefix_length(first)
    assert backend.forward(inputs) == pytest.approx(full_rows(backend, inputs), abs=TOLERANCE)


def test_the_windows_of_a_long_document_share_the_prompt(tiny_qwen3_reranker: Path) -> None:
    spec = LlmRerankerSpec(
        name="m", kind="llm-reranker", source=str(tiny_qwen3_reranker), dtype="fp32", max_length=256
    )
    backend = LlmRerankerBackend.load(spec)
    prepared = backend.prepare(
        text_of(backend, 64), [text_of(backend, 600)], ScoreOptions(long_documents="chunk")
    )
    inputs = prepared.inputs
    assert len(inputs) > 2 and shared_prefix_length(inputs) >= 64
    assert backend.forward(inputs) == pytest.approx(full_rows(backend, inputs), abs=TOLERANCE)
