"""The measures (ir-measures) against values worked out by hand, and the paired test."""

from __future__ import annotations

import math

import pytest

from rerankd.evaluate.measures import paired_test, per_query


def test_measures_match_a_hand_computed_example() -> None:
    qrels = {"q": {"a": 2, "c": 1, "z": 1}}  # z is never retrieved
    run = {"q": {"a": 0.1, "b": 0.9, "c": 0.5}}  # ranking: b, c, a
    values = per_query(qrels, run)
    # DCG with gain = grade, discount log2(rank + 1): c at rank 2 (1/log2 3), a at rank 3 (2/log2 4)
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert values["NDCG@10"]["q"] == pytest.approx(dcg / ideal)
    assert values["MRR@10"]["q"] == pytest.approx(1 / 2)  # first relevant at rank 2
    assert values["Recall@100"]["q"] == pytest.approx(2 / 3)
    assert values["MAP"]["q"] == pytest.approx((1 / 2 + 2 / 3) / 3)  # precision at each relevant found


def test_queries_without_judgements_are_left_out_and_empty_rankings_score_zero() -> None:
    values = per_query({"q1": {"a": 1}, "q2": {"a": 1}}, {"q1": {}, "q2": {"a": 1.0}, "q3": {"a": 1.0}})
    assert values["NDCG@10"] == {"q1": 0.0, "q2": 1.0}


def test_paired_test() -> None:
    a = {"q1": 0.1, "q2": 0.2, "q3": 0.3, "q4": 0.4}
    better = {"q1": 0.5, "q2": 0.7, "q3": 0.6, "q4": 0.9}
    test = paired_test(a, better)
    assert test.mean_difference == pytest.approx(0.425)
    assert 0 < test.p_value < 0.01
    assert paired_test(a, a).p_value == 1.0
