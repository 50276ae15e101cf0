"""Fused-kernel paths against rerankd's eager ones: bare forward passes of a generated cross-encoder, rows
per second at a few batch shapes, and each path's time to its first answer (compilation included).

    .venv/bin/python benchmarks/bench_fused.py --model bert-base
    .venv/bin/python benchmarks/bench_fused.py --paths fp32,autocast,openvino-bf16   # pip install openvino

Paths: ``fp32``, ``autocast`` (fp32 weights, bf16 matmuls: ``dtype: auto`` on a CPU with native bf16),
``bf16`` (bf16 weights), ``compile-autocast`` and ``compile-bf16`` (``torch.compile``, inductor, with
freezing and weight prepacking: each new batch shape compiles again, up to torch's recompile limit),
``openvino-bf16`` and ``openvino-f32`` (the model converted with ``openvino.convert_model`` and compiled for
the CPU at that inference precision). The report is in benchmarks/reports/amx-2026-12-02/fused-kernels.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rerankd_support.bench.options import csv_list
from rerankd_support.bench.servers import ensure_model
from rerankd_support.paths import BENCH_CACHE
from transformers import AutoModelForSequenceClassification

PATHS = ("fp32", "autocast", "bf16", "compile-autocast", "compile-bf16", "openvino-bf16", "openvino-f32")
SHAPES = ((16, 256), (8, 256), (32, 128), (4, 256))

Forward = Callable[[np.ndarray], Any]  # token ids (rows x length) -> logits


def _inputs(ids: np.ndarray) -> dict[str, torch.Tensor]:
    tensor = torch.from_numpy(ids)
    return {
        "input_ids": tensor,
        "attention_mask": torch.ones_like(tensor),
        "token_type_ids": torch.zeros_like(tensor),
    }


def torch_path(folder: Path, path: str) -> Forward:
    dtype = torch.bfloat16 if path.endswith("bf16") and not path.startswith("openvino") else torch.float32
    model: Any = AutoModelForSequenceClassification.from_pretrained(folder, dtype=dtype).eval()
    if path.startswith("compile"):
        import torch._inductor.config as inductor

        inductor.freezing = True  # weights as constants: lets inductor prepack them for oneDNN
        model = torch.compile(model)
    autocast = path.endswith("autocast")

    def forward(ids: np.ndarray) -> Any:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return model(**_inputs(ids)).logits

    return forward


def openvino_path(folder: Path, precision: str) -> Forward:
    import openvino

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    example = _inputs(np.random.randint(1000, 20000, (2, 64)))
    with torch.no_grad():
        converted = openvino.convert_model(model, example_input=example)
    compiled = openvino.Core().compile_model(
        converted, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    )
    request = compiled.create_infer_request()

    def forward(ids: np.ndarray) -> Any:
        return request.infer({name: tensor.numpy() for name, tensor in _inputs(ids).items()})[0]

    return forward


def rows_per_second(forward: Forward, rows: int, length: int, repeats: int) -> float:
    ids = np.random.default_rng(0).integers(1000, 20000, (rows, length))
    forward(ids)
    forward(ids)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        forward(ids)
        best = min(best, time.perf_counter() - began)
    return rows / best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="bert-base", help="generated cross-encoder shape [bert-base]")
    parser.add_argument("--paths", type=csv_list(str), default=list(PATHS), help="paths to time [all]")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per shape, best kept [3]")
    parser.add_argument("--cache", type=Path, default=BENCH_CACHE)
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.paths) - set(PATHS)):
        parser.error(f"unknown --paths {unknown}; choose from {', '.join(PATHS)}")
    folder = ensure_model(args.model, args.cache, 0)
    print(f"| path | {' | '.join(f'{r} × {n}' for r, n in SHAPES)} | first call s |")
    print(f"|---|{'---:|' * len(SHAPES)}---:|")
    for path in args.paths:
        began = time.perf_counter()
        if path.startswith("openvino"):
            forward = openvino_path(folder, path.removeprefix("openvino-"))
        else:
            forward = torch_path(folder, path)
        forward(np.random.default_rng(1).integers(1000, 20000, (4, 64)))
        first = time.perf_counter() - began
        rates = [rows_per_second(forward, rows, length, args.repeats) for rows, length in SHAPES]
        print(f"| {path} | {' | '.join(f'{rate:.1f}' for rate in rates)} | {first:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
