"""Ranking quality per query, by ir-measures (pytrec_eval underneath), and paired significance tests.

Measures: NDCG@10 (graded gains as judged), MRR@10 (``RR@10``), Recall@100 (``R@100``) and MAP
(``AP``); reciprocal rank, recall and MAP count a document relevant at grade 1 or more. Queries are
those of the qrels that the run answers; a judged query with no candidate at all scores 0 (it is in the
run with an empty ranking). Paired two-sided t-tests over the queries compare systems (scipy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MEASURES", "PairedTest", "paired_test", "per_query"]

# Column name -> ir-measures name
MEASURES: dict[str, str] = {"NDCG@10": "nDCG@10", "MRR@10": "RR@10", "Recall@100": "R@100", "MAP": "AP"}


def per_query(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """measure -> {query: value}, for every query of ``run`` that has judgements."""
    import ir_measures

    measures = {name: ir_measures.parse_measure(spec) for name, spec in MEASURES.items()}
    judged = {query: dict(qrels[query]) for query in run if qrels.get(query)}
    ranked = {query: dict(run[query]) for query in judged}
    values: dict[str, dict[str, float]] = {name: dict.fromkeys(judged, 0.0) for name in MEASURES}
    by_measure = {measure: name for name, measure in measures.items()}
    for metric in ir_measures.iter_calc(list(measures.values()), judged, ranked):
        values[by_measure[metric.measure]][metric.query_id] = float(metric.value)
    return values


@dataclass(frozen=True, slots=True)
class PairedTest:
    mean_difference: float  # b − a, averaged over the queries
    p_value: float  # two-sided; 1.0 where the two agree on every query


def paired_test(a: Mapping[str, float], b: Mapping[str, float]) -> PairedTest:
    """Whether system b differs from system a on the same queries (paired t-test)."""
    from scipy.stats import ttest_rel

    queries = sorted(set(a) & set(b))
    left, right = [a[q] for q in queries], [b[q] for q in queries]
    differences = [y - x for x, y in zip(left, right, strict=True)]
    mean = sum(differences) / len(differences) if differences else 0.0
    if len(queries) < 2 or all(d == differences[0] for d in differences):
        # No spread: t is undefined; identical systems are not different.
        return PairedTest(mean, 1.0 if mean == 0 else 0.0)
    return PairedTest(mean, float(ttest_rel(right, left).pvalue))
