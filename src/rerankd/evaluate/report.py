"""What ``rerankd eval`` writes: a markdown table (printed too), a per-query CSV, a JSON summary and two
PNG plots (each measure per system; each query's NDCG@10 gain over the first stage, per system).
matplotlib is imported only here, when plots are drawn."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rerankd.evaluate.measures import MEASURES, paired_test

__all__ = ["SystemScores", "markdown", "write_csv", "write_json", "write_plots"]


@dataclass(frozen=True, slots=True)
class SystemScores:
    name: str
    values: dict[str, dict[str, float]]  # measure -> {query: value}
    tokens: dict[str, int] | None = None  # query -> usage tokens of its answer; None: not a model's answer

    def mean(self, measure: str) -> float:
        found = self.values[measure]
        return sum(found.values()) / len(found) if found else 0.0

    def tokens_per_query(self) -> float | None:
        """Mean usage tokens over the queries measured (for a cascade: every stage's)."""
        if self.tokens is None:
            return None
        counted = [self.tokens.get(query, 0) for query in self.values["NDCG@10"]]
        return sum(counted) / len(counted) if counted else 0.0


def markdown(systems: Sequence[SystemScores], title: str) -> str:
    """The means per system, and for NDCG@10 the difference from the first system (the first stage)
    with its paired t-test's p-value, and the usage tokens per query of its answers; then p-values between
    every two systems when there are several."""
    base = systems[0]
    head = "| system | " + " | ".join(MEASURES) + " | Δ NDCG@10 | p (vs first stage) | tokens/query |"
    lines = [title, "", head, "|---|" + "---:|" * (len(MEASURES) + 3)]
    for system in systems:
        cells = [f"{system.mean(measure):.4f}" for measure in MEASURES]
        tokens = system.tokens_per_query()
        if system is base:
            cells += ["", ""]
        else:
            test = paired_test(base.values["NDCG@10"], system.values["NDCG@10"])
            cells += [f"{test.mean_difference:+.4f}", f"{test.p_value:.2g}"]
        cells.append("" if tokens is None else f"{tokens:.0f}")
        lines.append(f"| {system.name} | " + " | ".join(cells) + " |")
    if len(systems) > 2:
        lines += ["", "Paired t-test p-values on NDCG@10 (row vs column):", ""]
        lines.append("| | " + " | ".join(system.name for system in systems[1:]) + " |")
        lines.append("|---|" + "---:|" * (len(systems) - 1))
        for i, row in enumerate(systems[1:-1], start=1):
            cells = [
                f"{paired_test(row.values['NDCG@10'], column.values['NDCG@10']).p_value:.2g}" if j > i else ""
                for j, column in enumerate(systems[1:], start=1)
            ]
            lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, systems: Sequence[SystemScores]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["query", "system", *MEASURES, "tokens"])
        for system in systems:
            for query in system.values["NDCG@10"]:
                tokens = "" if system.tokens is None else system.tokens.get(query, 0)
                values = [f"{system.values[measure][query]:.6f}" for measure in MEASURES]
                writer.writerow([query, system.name, *values, tokens])


def write_json(path: Path, systems: Sequence[SystemScores], settings: Mapping[str, object]) -> None:
    summary = {
        "settings": settings,
        "systems": [
            {
                "name": system.name,
                **{measure: system.mean(measure) for measure in MEASURES},
                "tokens_per_query": system.tokens_per_query(),
            }
            for system in systems
        ],
    }
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")


def write_plots(folder: Path, systems: Sequence[SystemScores]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    measures = list(MEASURES)
    width = 0.8 / len(systems)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(measures) * len(systems) / 2), 4.5))
    for k, system in enumerate(systems):
        positions = [i + (k - (len(systems) - 1) / 2) * width for i in range(len(measures))]
        axes.bar(positions, [system.mean(measure) for measure in measures], width, label=system.name)
    axes.set_xticks(range(len(measures)), measures)
    axes.set_ylabel("mean over queries")
    axes.set_ylim(0, 1)
    axes.legend(fontsize="small")
    figure.tight_layout()
    measures_png = folder / "measures.png"
    figure.savefig(measures_png, dpi=120)
    plt.close(figure)

    base = systems[0].values["NDCG@10"]
    figure, axes = plt.subplots(figsize=(7.0, 4.5))
    for system in systems[1:]:
        gains = sorted((system.values["NDCG@10"][q] - base[q] for q in base), reverse=True)
        axes.plot(range(1, len(gains) + 1), gains, label=system.name)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xlabel("queries, largest gain first")
    axes.set_ylabel(f"NDCG@10 gain over {systems[0].name}")
    axes.legend(fontsize="small")
    figure.tight_layout()
    gain_png = folder / "gain.png"
    figure.savefig(gain_png, dpi=120)
    plt.close(figure)
    return [measures_png, gain_png]
