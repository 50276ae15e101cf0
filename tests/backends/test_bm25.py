"""BM25 backend: English and Chinese rank sensibly; scores and token counts are well formed."""

from __future__ import annotations

from rerankd.backends.bm25 import Bm25Backend, tokenize
from rerankd.serving.service import activate
from rerankd.types import ScoreOptions

OPTIONS = ScoreOptions()


def test_tokenize_words_and_cjk_bigrams() -> None:
    assert tokenize("The Capitals of STATES") == ["capit", "state"]
    assert tokenize("美国首都") == ["美国", "国首", "首都"]
    assert tokenize("华") == ["华"]
    assert tokenize("Washington 华盛顿") == ["washington", "华盛", "盛顿"]


def test_english_ranking() -> None:
    docs = [
        "Carson City is the capital city of the American state of Nevada.",
        "Washington, D.C. is the capital of the United States.",
        "Capitalization in English grammar.",
    ]
    result = Bm25Backend().score("capital of the United States", docs, OPTIONS)
    assert max(range(3), key=lambda i: result.scores[i]) == 1
    assert result.query_tokens == 3
    assert len(result.document_tokens) == 3


def test_chinese_without_spaces_ranks_the_answer_first() -> None:
    docs = [
        "卡森城是美国内华达州的首府",
        "华盛顿特区是美国的首都",
        "英语语法中的大写字母用法",
        "死刑在美国的历史",
    ]
    result = Bm25Backend().score("美国的首都是哪里?", docs, OPTIONS)
    assert max(range(4), key=lambda i: result.scores[i]) == 1
    relevance = activate(tuple(result.scores), "saturation")
    assert all(0.0 <= r < 1.0 for r in relevance)


def test_no_overlap_scores_zero() -> None:
    result = Bm25Backend().score("zebra", ["alpha beta", "gamma"], OPTIONS)
    assert result.scores == [0.0, 0.0]
    assert Bm25Backend().score("the of", ["alpha"], OPTIONS).scores == [0.0]  # only stop words
