"""ModernBERT cross-encoders (gte-reranker-modernbert-base: ``classifier_pooling: mean``; others ``cls``)
through the existing cross-encoder backend and the HTTP API, against sentence-transformers' CrossEncoder and
transformers' own model on the same generated folder: fp32 scores, no token type ids, and 8192 positions by
default, so a document past 512 tokens is read whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from rerankd_support.harness import Server, all_models_ready
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.backends.specs import TransformerSpec
from rerankd.types import ScoreOptions

from .scoring import ranking

QUERY = "What is the boundary layer of a wing?"
DOCUMENTS = [
    "The boundary layer is the thin layer of air next to the surface of a wing.",
    "Shock waves form when the flow over a wing becomes supersonic.",
    "Heat transfer in a nozzle depends on the flow rate.",
    "short",
    "",
]
# About 900 tokens: past 512, inside 8192, and longer than ModernBERT's 128-token local attention.
LONG = " ".join(
    f"Section {n}: the boundary layer thickens and separates near the trailing edge." for n in range(60)
)
POOLINGS = ["mean", "cls"]


@pytest.fixture(scope="module")
def tiny_modernbert(models_dir: Path) -> dict[str, Path]:
    from rerankd_support.models import make_tiny_modernbert_cross_encoder

    return {
        pooling: make_tiny_modernbert_cross_encoder(
            models_dir / f"tiny-modernbert-{pooling}", pooling=pooling
        )
        for pooling in ("mean", "cls")
    }


@pytest.fixture(scope="module")
def server(start_server: Any, tiny_modernbert: dict[str, Path]) -> Server:
    models = [
        {"name": pooling, "kind": "cross-encoder", "source": str(path), "dtype": "fp32", "preload": True}
        for pooling, path in tiny_modernbert.items()
    ]
    server: Server = start_server({"models": models}, ready=all_models_ready)
    return server


def rerank(server: Server, model: str, documents: list[str]) -> list[float]:
    body = {"model": model, "query": QUERY, "documents": documents, "raw_scores": True}
    response = httpx.post(f"{server.url}/v1/rerank", json=body, timeout=120)
    assert response.status_code == 200, response.text
    scores = [0.0] * len(documents)
    for result in response.json()["results"]:
        scores[result["index"]] = result["relevance_score"]
    return scores


def transformers_logits(path: Path, documents: list[str]) -> list[float]:
    """transformers' own model, one pair per pass (no padding). The pair goes in as a batch of one: given
    alone, an empty second text is taken for no second text at all (one [SEP] fewer)."""
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32).eval()
    scores = []
    with torch.no_grad():
        for document in documents:
            scores.append(float(model(**tokenizer([QUERY], [document], return_tensors="pt")).logits[0, 0]))
    return scores


@pytest.mark.parametrize("pooling", POOLINGS)
def test_scores_equal_sentence_transformers_and_transformers(
    server: Server, tiny_modernbert: dict[str, Path], pooling: str
) -> None:
    path = tiny_modernbert[pooling]
    documents = [*DOCUMENTS, LONG]
    ours = rerank(server, pooling, documents)
    reference = CrossEncoder(str(path), device="cpu", model_kwargs={"dtype": torch.float32})
    assert reference.max_seq_length == 8192  # the tokenizer's limit, as saved
    theirs = reference.predict([(QUERY, d) for d in documents], activation_fn=torch.nn.Identity()).tolist()
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert ours == pytest.approx(transformers_logits(path, documents), abs=1e-4)
    assert ranking(ours) == ranking(theirs)
    assert max(ours) - min(ours) > 1e-2


@pytest.mark.parametrize("pooling", POOLINGS)
def test_no_token_type_ids_and_8192_positions_by_default(
    tiny_modernbert: dict[str, Path], pooling: str
) -> None:
    spec = TransformerSpec(name="m", kind="cross-encoder", source=str(tiny_modernbert[pooling]), dtype="fp32")
    backend = CrossEncoderBackend.load(spec)
    assert backend.max_length == 8192
    prepared = backend.prepare(QUERY, [LONG], ScoreOptions())
    assert len(prepared.inputs) == 1 and len(prepared.inputs[0]) > 512  # one window: the whole document
    assert prepared.inputs[0].token_type_ids is None
    seen: list[set[str]] = []
    hook = backend.model.register_forward_pre_hook(
        lambda _, args, kwargs: seen.append(set(kwargs)), with_kwargs=True
    )
    try:
        whole = backend.forward(prepared.inputs)[0]
    finally:
        hook.remove()
    assert seen == [{"input_ids", "attention_mask"}]
    # Reading past 512 tokens changes the score: the long document was not cut there.
    cut = backend.prepare(QUERY, [LONG], ScoreOptions(max_tokens_per_doc=500, long_documents="truncate_end"))
    assert abs(backend.forward(cut.inputs)[0] - whole) > 1e-4
