"""A byte-level BPE trainer and the Qwen2-style tokenizer built with it, holding Qwen3's chat tokens.

Merges are learnt on the built-in corpus plus the Qwen3-Reranker prompt (weighted, so its words become
whole tokens and a prompt is about as many tokens as with the real vocabulary), deterministically: ties
between equally frequent pairs are broken by the pair itself. ``yes`` and ``no`` are forced to be single
tokens, as a yes/no reranker needs.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

from rerankd_support.corpus import training_corpus
from rerankd_support.vocab import unique

__all__ = ["QWEN_ADDED", "QWEN_MODEL_MAX_LENGTH", "QWEN_SPECIALS", "build_byte_bpe_tokenizer"]

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
    return {token: index for index, token in enumerate(unique(tokens))}, merges
