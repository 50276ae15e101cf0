"""BM25 over the request's own documents, with bm25s.

The index is built per request (the documents are the corpus), so IDF is relative to what the caller
sent. Text is lower-cased and split into words; runs of CJK characters, which have no spaces, become
overlapping character bigrams (as Lucene's CJK analyzer does), so Chinese and Japanese rank sensibly
without a dictionary. English stop words are dropped and words are stemmed when PyStemmer is
installed. Whole documents are scored (BM25 has no window), whatever the chunking options. Raw BM25
scores are >= 0; the service maps them to 0..1 as ``s / (s + 1)``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import bm25s
from bm25s.stopwords import STOPWORDS_EN

from rerankd.backends.base import DirectScores
from rerankd.backends.specs import Bm25Spec
from rerankd.types import Activation, ScoreOptions

__all__ = ["Bm25Backend", "tokenize"]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_]+")
_CJK_RUN = re.compile(rf"[{_CJK}]+")
_STOPWORDS = frozenset(STOPWORDS_EN)

try:  # optional: stemming helps English recall; without it words match exactly
    import Stemmer

    _stem: Any = Stemmer.Stemmer("english").stemWord
except ImportError:  # pragma: no cover - depends on the environment
    _stem = None


def tokenize(text: str) -> list[str]:
    """Words for BM25: CJK runs as character bigrams, other words lower-cased, stemmed, no stop words."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        word = match.group()
        if _CJK_RUN.fullmatch(word):
            tokens.extend([word] if len(word) == 1 else [word[i : i + 2] for i in range(len(word) - 1)])
        elif word not in _STOPWORDS:
            tokens.append(_stem(word) if _stem else word)
    return tokens


class Bm25Backend:
    activation: Activation = "saturation"

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b

    @classmethod
    def load(cls, spec: Bm25Spec) -> Bm25Backend:
        return cls(k1=spec.k1, b=spec.b)

    def score(self, query: str, documents: Sequence[str], options: ScoreOptions) -> DirectScores:
        corpus = [tokenize(document) for document in documents]
        query_tokens = tokenize(query)
        scores: Any = [0.0] * len(corpus)
        # Nothing to match (no query words, or documents of only stop words/punctuation): all zero.
        if query_tokens and any(corpus):
            retriever = bm25s.BM25(k1=self.k1, b=self.b)
            retriever.index(corpus, show_progress=False)
            scores = retriever.get_scores(query_tokens)
        return DirectScores(
            scores=[float(score) for score in scores],
            query_tokens=len(query_tokens),
            document_tokens=[len(tokens) for tokens in corpus],
        )
