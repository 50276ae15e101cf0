"""BPE trainers and the tokenizers built with them: a Qwen2-style byte-level one holding Qwen3's chat
tokens, and a Gemma-style one (spaces as ``▁``, byte fallback) holding Gemma's BOS.

Merges are learnt on the built-in corpus plus a model's prompt (weighted, so its words become whole
tokens and a prompt is about as many tokens as with the real vocabulary; the Qwen3-Reranker prompt unless
another is given), deterministically: ties between equally frequent pairs are broken by the pair itself.
The answer words of a reranker (``yes`` and ``no``; ``Yes``) are forced to be single tokens.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rerankd_support.corpus import training_corpus
from rerankd_support.vocab import unique

__all__ = [
    "GEMMA_SPECIALS",
    "QWEN_ADDED",
    "QWEN_MODEL_MAX_LENGTH",
    "QWEN_PROMPT_CORPUS",
    "QWEN_SPECIALS",
    "build_byte_bpe_tokenizer",
    "build_gemma_tokenizer",
]

# Qwen3's control tokens: added tokens, matched in text before the byte-level BPE runs. <|endoftext|> is
# the padding token, <|im_end|> the end of a turn; <think> and </think> are added but not "special".
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_ADDED = ["<think>", "</think>"]
# The words a yes/no reranker answers with must be single tokens; these merges come first so they are.
_FORCED_MERGES = [("y", "e"), ("ye", "s"), ("n", "o")]
# Text of the Qwen3-Reranker prompt, so that its words get whole tokens as in the real vocabulary.
QWEN_PROMPT_CORPUS = [
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".',
    "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n<Query>: ",
    "\n<Document>: ",
    "system\nuser\nassistant\n\n",
]
_PROMPT_WEIGHT = 20
QWEN_MODEL_MAX_LENGTH = 131072  # what the real tokenizer_config.json says


def build_byte_bpe_tokenizer(
    out_dir: Path, merges: int = 1200, prompt_corpus: Sequence[str] = QWEN_PROMPT_CORPUS
) -> Any:
    """Build a Qwen2-style byte-level BPE tokenizer (``Qwen2Tokenizer``) with Qwen3's chat tokens.

    Like the real one it has no BOS, adds no special tokens around text, has no pair post-processor and
    pads with ``<|endoftext|>``. ``yes`` and ``no`` are single tokens, and so is every digit.
    ``prompt_corpus``: the prompt text whose words should be whole tokens.
    """
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab, merge_list = _byte_bpe(merges, prompt_corpus)
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


def _byte_bpe(num_merges: int, prompt_corpus: Sequence[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn byte-level BPE merges on the built-in corpus, deterministically (ties broken by the pair)."""
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    # An empty Qwen2Tokenizer only to borrow its pre-tokeniser (Qwen's split regex, then byte-level).
    pre_tokenizer = Qwen2Tokenizer(vocab={"<|endoftext|>": 0}, merges=[]).backend_tokenizer.pre_tokenizer
    words: Counter[str] = Counter()
    for sentence in _sentences(prompt_corpus):
        words.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(sentence))
    tokens = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = _learn_merges(words, tokens, _FORCED_MERGES, num_merges)
    return {token: index for index, token in enumerate(unique(tokens))}, merges


def _sentences(prompt_corpus: Sequence[str]) -> list[str]:
    # The prompt counts as if it were seen often (it is, in the real model's training data), so that its
    # words become whole tokens and a prompt is about as many tokens as with the real vocabulary.
    return [*training_corpus(), *list(prompt_corpus) * _PROMPT_WEIGHT]


def _learn_merges(
    words: Counter[str], tokens: list[str], forced: Sequence[tuple[str, str]], num_merges: int
) -> list[tuple[str, str]]:
    """Merges learnt on ``words`` (word -> count), the forced ones first; ``tokens`` (the alphabet) gets
    each merged token appended."""
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
    for pair in forced:
        merge(pair)
    for _ in range(num_merges):
        candidates = [pair for pair, seen in counts.items() if seen >= 2]
        if not candidates:
            break
        merge(min(candidates, key=lambda pair: (-counts[pair], pair)))
    return merges


# Gemma's special tokens, at its ids: <pad> 0, <eos> 1, <bos> 2, <unk> 3, <mask> 4; then the 256 byte
# tokens of its byte fallback (<0x00> ... <0xFF>).
GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
_GEMMA_FORCED_MERGES = [("Y", "e"), ("Ye", "s"), ("N", "o")]
GEMMA_MODEL_MAX_LENGTH = 8192


def build_gemma_tokenizer(out_dir: Path, prompt_corpus: Sequence[str], merges: int = 1200) -> Any:
    """Build a Gemma-style BPE tokenizer (``GemmaTokenizer``): spaces become ``▁``, text is not split into
    words before the merges, characters outside the vocabulary fall back to byte tokens.

    Like the real one it has ``<bos>`` (added in front of text by default), ``<eos>`` and pads with
    ``<pad>``. ``Yes`` and ``No`` are single tokens.
    """
    from transformers import GemmaTokenizer

    words: Counter[str] = Counter()
    for sentence in _sentences(prompt_corpus):
        # Words as SentencePiece sees them: each space joins the word after it, a newline stands alone.
        for line_index, line in enumerate(sentence.split("\n")):
            if line_index:
                words["\n"] += 1
            words.update(re.findall(r"▁*[^▁]+|▁+", line.replace(" ", "▁")))
    alphabet = sorted({char for word in words for char in word})
    tokens = [*GEMMA_SPECIALS, *(f"<0x{byte:02X}>" for byte in range(256)), *alphabet]
    merge_list = _learn_merges(words, tokens, _GEMMA_FORCED_MERGES, merges)
    vocab = {token: index for index, token in enumerate(unique(tokens))}
    merges_arg: Any = merge_list  # pairs, which the Rust BPE takes (transformers' annotation says strings)
    tokenizer = GemmaTokenizer(
        vocab=vocab, merges=merges_arg, add_bos_token=True, model_max_length=GEMMA_MODEL_MAX_LENGTH
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer
