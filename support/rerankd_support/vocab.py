"""WordPiece (BERT) and Unigram (XLM-RoBERTa) tokenizers counted deterministically on the built-in corpus.

The vocabularies are counted here rather than learnt with tokenizers' WordPiece/Unigram trainers: those
trainers iterate Rust hash maps with per-process random seeds, so two runs on the same corpus give
different vocabularies (sizes, ids and scores), and the models built on top would not be reproducible.
Counting words and sub-word pieces with the tokenizers library's own normaliser and pre-tokeniser gives
the same kind of vocabulary deterministically. Each builder saves a ``transformers`` tokenizer folder
that ``AutoTokenizer`` reopens offline.
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from pathlib import Path
from typing import Any

from rerankd_support.corpus import training_corpus

__all__ = [
    "METASPACE",
    "MODEL_MAX_LENGTH",
    "UNIGRAM_SPECIALS",
    "WORDPIECE_SPECIALS",
    "build_unigram_tokenizer",
    "build_wordpiece_tokenizer",
    "unique",
]

MODEL_MAX_LENGTH = 512
WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The order fixes the ids XLM-RoBERTa expects: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4.
UNIGRAM_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
METASPACE = "▁"

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
    return {token: index for index, token in enumerate(unique(ordered)[:vocab_size])}


def _wrap_wordpiece(vocab: dict[str, int]) -> Any:
    # transformers 5 folded BertTokenizerFast into BertTokenizer, which builds the BERT pipeline
    # (normaliser, pre-tokeniser, [CLS] $A [SEP] $B:1 [SEP]:1 template) from a vocabulary; that is also
    # how it reloads a saved folder, so what the tests exercise is exactly what loads later.
    import transformers

    cls = getattr(transformers, "BertTokenizerFast", None) or transformers.BertTokenizer
    common: dict[str, Any] = {"do_lower_case": True, "model_max_length": MODEL_MAX_LENGTH}
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


def unique(tokens: list[str]) -> list[str]:
    """``tokens`` without repeats, first occurrences kept in order."""
    return list(dict.fromkeys(tokens))


def _is_v5_tokenizer(cls: type) -> bool:
    # v5 tokenizer classes accept ``vocab=`` and build the backend themselves; 4.x Fast classes need a
    # tokenizer object or a file. Inspect the constructor rather than parse version strings.
    return "vocab" in inspect.signature(cls).parameters
