"""Command-line options shared by the benchmark scripts: comma-separated lists and the servers' options.

:func:`add_server_arguments` holds the options of the servers and models under test that
``bench_server.py`` and ``bench_perf.py`` both take (model cache, seed, max length, batch budget,
device, settle timeout, the rerankd command); :func:`check_device` validates ``--device``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rerankd_support.paths import BENCH_CACHE

__all__ = ["add_server_arguments", "check_device", "csv_list"]

T = TypeVar("T")


def csv_list(kind: Callable[[str], T]) -> Callable[[str], list[T]]:
    """An argparse ``type`` for ``a,b,c``: each part converted with ``kind``, empty parts skipped."""

    def parse(text: str) -> list[T]:
        return [kind(part.strip()) for part in text.split(",") if part.strip()]

    return parse


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the servers and models under test, shared by bench_server.py and bench_perf.py."""
    parser.add_argument("--cache", type=Path, default=BENCH_CACHE, help="generated models (reused)")
    parser.add_argument("--seed", type=int, default=0, help="model weights and request sampling")
    parser.add_argument("--max-length", type=int, default=512, help="tokens per (query, document) pair")
    parser.add_argument(
        "--max-batch-tokens", type=int, help="rerankd's max_batch_tokens [default: rerankd's, 4096 on CPU]"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu, or cuda / cuda:N: every server runs its model there (rerankd in bf16 with dtype auto, the "
        "naive server in CrossEncoder's fp32; bench_perf.py: Infinity in its auto half precision, and the "
        "peak is the GPU's) [default: cpu]",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for leftover work before a restart",
    )
    parser.add_argument(
        "--rerankd",
        default=f"{sys.executable} -m rerankd",
        help="command that runs rerankd (the benchmark appends `serve --config ...`)",
    )


def check_device(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.device != "cpu":
        import torch

        if not args.device.startswith("cuda") or not torch.cuda.is_available():
            parser.error(f"--device {args.device}: use cpu, or cuda[:N] where torch sees a CUDA device")
