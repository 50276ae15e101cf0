"""Markdown tables and the description of the machine and software every benchmark report starts with.

Numbers are formatted the way the reports read them: latencies in ms with ``>=`` for a lower bound,
ratios as ``1.23x``, load averages as ``1.0/0.8/0.5``; :func:`environment` records the date, CPUs,
platform and the versions of the packages that matter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
from typing import Any

__all__ = ["environment", "fmt_loads", "fmt_ms", "fmt_ratio", "load_average", "markdown_table"]


def fmt_ms(value: float | None, lower_bound: bool) -> str:
    if value is None:
        return "-"
    return f"{'>=' if lower_bound else ''}{value:,.0f}"


def fmt_ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


def markdown_table(columns: list[tuple[str, bool]], rows: list[list[str]]) -> str:
    header = [name for name, _ in columns]
    align = ["---:" if right else "---" for _, right in columns]
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, align, *rows])


def environment() -> dict[str, Any]:
    import importlib.metadata as metadata

    versions = {}
    for package in ("rerankd", "torch", "transformers", "sentence-transformers", "tokenizers", "httpx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": load_average(),
        "versions": versions,
    }


def fmt_loads(values: list[float] | None) -> str:
    return "/".join(f"{value:.1f}" for value in values) if values else "?"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, where the platform has them."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None
