"""LLM reranker backend (Qwen3-Reranker style) on a generated tiny Qwen3, against the model card's recipe.

The reference below is written from the Qwen3-Reranker model card, independently of the backend: the
fixed prefix and suffix tokenized alone, ``<Instruct>: ...\\n<Query>: ...\\n<Document>: ...`` tokenized
as one text, one pair per forward pass (no padding), and the score ``softmax([logit(no), logit(yes)])[1]``
at the last position.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from rerankd.api.app import create_app
from rerankd.backends.base import Encoded
from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.backends.llm_reranker import MIN_SHARED_PREFIX, LlmRerankerBackend, shared_prefix_length
from rerankd.backends.specs import LlmRerankerSpec, TransformerSpec
from rerankd.config import ConfigError, load_settings
from rerankd.errors import InvalidRequest
from rerankd.kinds import model_spec
from rerankd.types import LongDocuments, ScoreOptions

from .scoring import score_batched, sigmoid

PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
    "Capitalization in English grammar is the use of a capital letter at the start of a word.",
    "short",
    "华盛顿特区是美国的首都",
    "",
    "!!! punctuation, then words",
    " leading space and trailing space ",
]
LONG_DOCUMENT = " ".join(f"The boundary layer {i} separates from the wing." for i in range(12))


def load(path: Path, **fields: Any) -> LlmRerankerBackend:
    return LlmRerankerBackend.load(
        LlmRerankerSpec(
            name="m", kind="llm-reranker", source=str(path), device="cpu", **{"dtype": "fp32", **fields}
        )
    )


class ModelCard:
    """The model card's formula, one (query, document) pair at a time."""

    def __init__(self, path: Path) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
        self.yes = self.tokenizer.convert_tokens_to_ids("yes")
        self.no = self.tokenizer.convert_tokens_to_ids("no")
        self.prefix = self.tokenizer.encode(PREFIX, add_special_tokens=False)
        self.suffix = self.tokenizer.encode(SUFFIX, add_special_tokens=False)

    def input_ids(self, query: str, document: str, instruction: str = DEFAULT_INSTRUCTION) -> list[int]:
        body = f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
        return [*self.prefix, *self.tokenizer(body)["input_ids"], *self.suffix]

    def probability(self, ids: list[int]) -> float:
        with torch.no_grad():
            logits = self.model(torch.tensor([ids])).logits[0, -1]
        pair = torch.stack([logits[self.no], logits[self.yes]])
        return float(torch.log_softmax(pair, dim=0)[1].exp())

    def score(self, query: str, document: str, instruction: str = DEFAULT_INSTRUCTION) -> float:
        return self.probability(self.input_ids(query, document, instruction))


@cache
def model_card(path: Path) -> ModelCard:
    return ModelCard(path)


@pytest.fixture(scope="module")
def backend(tiny_qwen3_reranker: Path) -> LlmRerankerBackend:
    return load(tiny_qwen3_reranker)


# -- the formula ---------------------------------------------------------------------------------


@pytest.mark.parametrize("instruction", [None, "Find the passage that names the capital city"])
def test_scores_equal_the_model_card_formula(
    backend: LlmRerankerBackend, tiny_qwen3_reranker: Path, instruction: str | None
) -> None:
    reference = model_card(tiny_qwen3_reranker)
    options = ScoreOptions(instruction=instruction)
    prepared = backend.prepare(QUERY, DOCUMENTS, options)
    expected_instruction = instruction or DEFAULT_INSTRUCTION
    # The very tokens of the model card, not just close scores.
    for document, item in zip(DOCUMENTS, prepared.inputs, strict=True):
        assert list(item.input_ids) == reference.input_ids(QUERY, document, expected_instruction)
    ours = [sigmoid(s) for s in score_batched(backend, QUERY, DOCUMENTS, options, budget=400)]
    theirs = [reference.score(QUERY, document, expected_instruction) for document in DOCUMENTS]
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert max(ours) - min(ours) > 1e-3  # the generated model is not degenerate


def test_raw_score_is_the_yes_no_log_odds(backend: LlmRerankerBackend, tiny_qwen3_reranker: Path) -> None:
    reference = model_card(tiny_qwen3_reranker)
    raw = score_batched(backend, QUERY, DOCUMENTS[:3])
    for document, value in zip(DOCUMENTS[:3], raw, strict=True):
        probability = reference.score(QUERY, document)
        assert value == pytest.approx(math.log(probability / (1 - probability)), abs=1e-4)


def test_batch_of_many_equals_one_at_a_time(backend: LlmRerankerBackend) -> None:
    documents = [*DOCUMENTS, LONG_DOCUMENT[:200], LONG_DOCUMENT[:90], "capital " * 30]
    alone = [score_batched(backend, QUERY, [document])[0] for document in documents]
    together = score_batched(backend, QUERY, documents)
    assert together == pytest.approx(alone, abs=1e-5)
    # Packed into small batches of different company, reversed order: the same scores again.
    reversed_scores = score_batched(backend, QUERY, documents[::-1], budget=500)[::-1]
    assert reversed_scores == pytest.approx(alone, abs=1e-5)


def test_a_shared_prefix_is_computed_once_with_the_same_scores(backend: LlmRerankerBackend) -> None:
    """Rows that begin alike (here two requests with one instruction) reuse the prefix's keys and values."""
    first = backend.prepare(QUERY, DOCUMENTS, ScoreOptions())
    second = backend.prepare("capital of France", DOCUMENTS[:3], ScoreOptions())
    inputs = [*first.inputs, *second.inputs]
    shared = shared_prefix_length(inputs)
    # The system prompt and the instruction, not the query.
    assert MIN_SHARED_PREFIX <= shared < shared_prefix_length(first.inputs)
    try:
        backend.share_prefix = False
        full = backend.forward(inputs)
    finally:
        backend.share_prefix = True
    assert backend.forward(inputs) == pytest.approx(full, abs=1e-5)
    assert backend.share_prefix  # the shared path ran, and did not fall back to full rows
    assert backend.forward(first.inputs) == pytest.approx(full[: len(first.inputs)], abs=1e-5)
    # Every row keeps at least one token of its own, even one that is all prefix.
    assert shared_prefix_length([Encoded([1, 2, 3]), Encoded([1, 2, 3, 4])]) == 2


def test_usage_counts_every_token_scored(backend: LlmRerankerBackend) -> None:
    prepared = backend.prepare(QUERY, DOCUMENTS, ScoreOptions())
    assert prepared.query_tokens + sum(prepared.document_tokens) == sum(len(item) for item in prepared.inputs)
    assert prepared.document_tokens[DOCUMENTS.index("")] == 0
    assert prepared.chunks == [1] * len(DOCUMENTS)


# -- the instruction -------------------------------------------------------------------------------


def test_instruction_changes_the_prompt_and_nothing_else(backend: LlmRerankerBackend) -> None:
    tokenizer = backend.tokenizer
    default = backend.prepare(QUERY, DOCUMENTS[:1], ScoreOptions())
    custom = backend.prepare(QUERY, DOCUMENTS[:1], ScoreOptions(instruction="Judge by the city names"))
    default_text = tokenizer.decode(default.inputs[0].input_ids)
    custom_text = tokenizer.decode(custom.inputs[0].input_ids)
    assert f"<Instruct>: {DEFAULT_INSTRUCTION}\n<Query>: {QUERY}\n" in default_text
    assert custom_text == default_text.replace(DEFAULT_INSTRUCTION, "Judge by the city names")
    # An empty instruction means "no preference": the default one.
    blank = backend.prepare(QUERY, DOCUMENTS[:1], ScoreOptions(instruction="  "))
    assert list(blank.inputs[0].input_ids) == list(default.inputs[0].input_ids)
    assert backend.forward(custom.inputs) != pytest.approx(backend.forward(default.inputs), abs=1e-4)


def test_configured_default_instruction(tiny_qwen3_reranker: Path) -> None:
    backend = load(tiny_qwen3_reranker, default_instruction="Retrieve passages about cities")
    text = backend.tokenizer.decode(backend.prepare(QUERY, ["x"], ScoreOptions()).inputs[0].input_ids)
    assert "<Instruct>: Retrieve passages about cities\n" in text


# -- long inputs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_window(tiny_qwen3_reranker: Path) -> LlmRerankerBackend:
    return load(tiny_qwen3_reranker, max_length=160, overlap_tokens=4, max_chunks_per_doc=50)


def in_context(
    backend: LlmRerankerBackend, query: str, document: str
) -> tuple[list[int], list[int], list[int]]:
    """The model card's tokens split into (prompt before the document, document, prompt after it)."""
    reference = model_card(Path(backend.spec.source or ""))
    full = reference.input_ids(query, document)
    empty = reference.input_ids(query, "")
    suffix = reference.suffix
    # The prompt's tokens before the document are what the document's prompt shares with an empty one's.
    shared = next(k for k, (a, b) in enumerate(zip(full, empty, strict=False)) if a != b)
    assert full[-len(suffix) :] == suffix
    return full[:shared], full[shared : -len(suffix)], suffix


@pytest.mark.parametrize("mode", ["truncate_end", "truncate_start"])
def test_truncation_cuts_the_document_and_keeps_the_prompt(
    short_window: LlmRerankerBackend, mode: LongDocuments
) -> None:
    prepared = short_window.prepare(QUERY, [LONG_DOCUMENT, "short"], ScoreOptions(long_documents=mode))
    ids = list(prepared.inputs[0].input_ids)
    assert len(ids) == 160
    head, document, suffix = in_context(short_window, QUERY, LONG_DOCUMENT)
    assert ids[: len(head)] == head  # instruction and query intact
    assert ids[-len(suffix) :] == suffix  # the assistant turn intact: the answer comes right after it
    window = ids[len(head) : -len(suffix)]
    assert window == (document[: len(window)] if mode == "truncate_end" else document[-len(window) :])
    assert prepared.document_tokens[0] == len(window)
    assert prepared.query_tokens + sum(prepared.document_tokens) == sum(len(item) for item in prepared.inputs)
    scores = short_window.forward(prepared.inputs)
    assert all(math.isfinite(score) for score in scores)


def test_long_documents_are_chunked_and_scored_from_their_windows(short_window: LlmRerankerBackend) -> None:
    prepared = short_window.prepare(QUERY, [LONG_DOCUMENT, "short"], ScoreOptions())
    head, document, suffix = in_context(short_window, QUERY, LONG_DOCUMENT)
    windows = [list(item.input_ids)[len(head) : -len(suffix)] for item in prepared.inputs[:-1]]
    assert all(len(item) <= 160 for item in prepared.inputs)
    assert all(list(item.input_ids)[-len(suffix) :] == suffix for item in prepared.inputs)
    assert windows[0] == document[: len(windows[0])]
    # Every window is full length and the last one ends at the document's end, so it may share more than
    # the overlap with its neighbour: neighbours share at least the overlap.
    assert len({len(window) for window in windows}) == 1
    starts = [next(k for k in range(len(document)) if document[k : k + len(w)] == w) for w in windows]
    assert all(0 < later - earlier <= len(windows[0]) - 4 for earlier, later in itertools.pairwise(starts))
    assert windows[-1] == document[-len(windows[-1]) :]  # the whole document is covered
    assert prepared.chunks == [len(windows), 1]
    assert prepared.document_tokens[0] == sum(len(window) for window in windows)
    outputs = short_window.forward(prepared.inputs)
    expected = (
        short_window.spec.best_window_weight * max(outputs[:-1])
        + (1 - short_window.spec.best_window_weight) * outputs[0]
    )
    assert prepared.combine(outputs) == [pytest.approx(expected), outputs[-1]]


def test_chunk_limit_and_refusal(short_window: LlmRerankerBackend) -> None:
    assert short_window.prepare(QUERY, [LONG_DOCUMENT], ScoreOptions(max_chunks_per_doc=2)).chunks == [2]
    cut = short_window.prepare(QUERY, [LONG_DOCUMENT], ScoreOptions(max_tokens_per_doc=10))
    assert cut.chunks == [1] and cut.document_tokens == [10]
    with pytest.raises(InvalidRequest, match="document 0 has"):
        short_window.prepare(QUERY, [LONG_DOCUMENT], ScoreOptions(long_documents="error"))


def test_a_long_query_is_cut_never_the_instruction(short_window: LlmRerankerBackend) -> None:
    instruction = "Rank passages about aerodynamics"
    prepared = short_window.prepare(
        "capital " * 200, ["a document about washington"], ScoreOptions(instruction=instruction)
    )
    ids = list(prepared.inputs[0].input_ids)
    assert len(ids) <= 160
    text = short_window.tokenizer.decode(ids)
    assert f"<Instruct>: {instruction}\n<Query>: capital capital" in text
    assert text.endswith("<Document>: a document about washington" + SUFFIX)
    with pytest.raises(InvalidRequest, match="shorter instruction"):
        short_window.prepare(QUERY, ["x"], ScoreOptions(instruction="too long " * 100))


# -- other yes/no models by configuration ------------------------------------------------------------


def test_precision_is_reported(tiny_qwen3_reranker: Path) -> None:
    assert load(tiny_qwen3_reranker).precision == "fp32"


def test_a_custom_template_and_answer_tokens(tiny_qwen3_reranker: Path) -> None:
    template = "<|im_start|>user\nQuery: {query}\nPassage: {document}\nRelevant?<|im_end|>\n"
    backend = load(tiny_qwen3_reranker, prompt_template=template, yes_token="no", no_token="yes")
    reference = model_card(tiny_qwen3_reranker)
    prepared = backend.prepare(QUERY, DOCUMENTS[:2], ScoreOptions(instruction="ignored: no slot"))
    scores = prepared.combine(backend.forward(prepared.inputs))
    for document, item, score in zip(DOCUMENTS[:2], prepared.inputs, scores, strict=True):
        ids = reference.tokenizer.encode(
            template.format(query=QUERY, document=document), add_special_tokens=False
        )
        assert list(item.input_ids) == ids
        # The answers are swapped, so the score is the log-odds of "no".
        assert sigmoid(score) == pytest.approx(1 - reference.probability(ids), abs=1e-5)


def test_answer_tokens_must_be_in_the_vocabulary(tiny_qwen3_reranker: Path) -> None:
    with pytest.raises(ValueError, match="yes_token 'Absolutely' is not one token"):
        load(tiny_qwen3_reranker, yes_token="Absolutely")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt": "llama"}, "unknown prompt preset 'llama'"),
        ({"prompt_template": "{query} {passage}"}, "unknown slot {passage}"),
        ({"prompt_template": "{query} and no document"}, "exactly one {document}"),
        ({"prompt_template": "{query} {document} }"}, "not a valid template"),
        ({"yes_token": "no"}, "two different"),
    ],
)
def test_prompt_config_errors_are_clear(tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    config = {"models": [{"name": "m", "kind": "llm-reranker", "source": "/some/folder", **fields}]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_prompt_fields_belong_to_llm_rerankers_only() -> None:
    with pytest.raises(ValueError, match="unknown setting `yes_token` for kind cross-encoder"):
        model_spec({"name": "m", "kind": "cross-encoder", "source": "/x", "yes_token": "yes"})


# -- sequence-classification conversions -----------------------------------------------------------


def test_a_sequence_classification_conversion_scores_the_same(
    backend: LlmRerankerBackend, tiny_qwen3_seq_cls: Path
) -> None:
    converted = load(tiny_qwen3_seq_cls)
    assert converted.classifier
    expected = score_batched(backend, QUERY, DOCUMENTS)
    assert score_batched(converted, QUERY, DOCUMENTS, budget=400) == pytest.approx(expected, abs=1e-5)


def test_the_cross_encoder_serves_a_conversion_given_the_prompt(
    backend: LlmRerankerBackend, tiny_qwen3_seq_cls: Path
) -> None:
    """As the conversions' model cards do: the client puts the prompt around query and document."""
    cross_encoder = CrossEncoderBackend.load(
        TransformerSpec(
            name="m", kind="cross-encoder", source=str(tiny_qwen3_seq_cls), device="cpu", dtype="fp32"
        )
    )
    query = f"{PREFIX}<Instruct>: {DEFAULT_INSTRUCTION}\n<Query>: {QUERY}\n"
    documents = [f"<Document>: {document}{SUFFIX}" for document in DOCUMENTS]
    # Batched with right padding: needs the pad id the config lacked.
    theirs = score_batched(cross_encoder, query, documents, budget=400)
    assert theirs == pytest.approx(score_batched(backend, QUERY, DOCUMENTS), abs=1e-4)


# -- through the API -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_qwen3_reranker: Path) -> Iterator[TestClient]:
    # fp32 pinned: the comparisons are to 1e-5, and `auto` picks bf16 on CPUs that have it.
    model = {"name": "qwen", "kind": "llm-reranker", "source": str(tiny_qwen3_reranker), "dtype": "fp32"}
    config = {"models": [model]}
    path = tmp_path_factory.mktemp("llm-api") / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with TestClient(create_app(load_settings(path))) as test_client:
        yield test_client


def rerank_scores(client: TestClient, **fields: Any) -> tuple[list[float], dict[str, Any]]:
    body = {"model": "qwen", "query": QUERY, "documents": DOCUMENTS[:4], "top_n": 0, **fields}
    response = client.post("/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    scores = [0.0] * 4
    for result in data["results"]:
        scores[result["index"]] = result["relevance_score"]
    return scores, data["usage"]


def test_instruction_in_a_request_changes_the_scores(client: TestClient, tiny_qwen3_reranker: Path) -> None:
    reference = model_card(tiny_qwen3_reranker)
    default, usage = rerank_scores(client)
    assert default == pytest.approx([reference.score(QUERY, d) for d in DOCUMENTS[:4]], abs=1e-5)
    instruction = "Find passages written in Chinese"
    instructed, _ = rerank_scores(client, instruction=instruction)
    assert instructed == pytest.approx(
        [reference.score(QUERY, d, instruction) for d in DOCUMENTS[:4]], abs=1e-5
    )
    assert max(abs(a - b) for a, b in zip(default, instructed, strict=True)) > 1e-4
    raw, _ = rerank_scores(client, raw_scores=True)
    assert [sigmoid(score) for score in raw] == pytest.approx(default, abs=1e-6)
    expected_total = sum(len(reference.input_ids(QUERY, d)) for d in DOCUMENTS[:4])
    assert usage["total_tokens"] == expected_total
