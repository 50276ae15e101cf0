"""The machine's limit: the best matmul throughput torch reaches here, per precision.

:func:`measure_peak` times square matmuls and a BERT-shaped linear layer in fp32 and bf16 on a CPU, or
large matmuls in fp32, bf16 and fp16 on a GPU, and names the reference precision (the one rerankd
computes in with ``dtype: auto`` on that device); the performance report gives every server's useful
GFLOP/s as a share of that peak. :func:`cpu_description` lists the CPU flags that decide it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["cpu_description", "measure_peak", "reference_peak"]

PEAK_SECONDS_PER_CASE = 1.5


def cpu_description() -> dict[str, Any]:
    flags: set[str] = set()
    name = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "model name" and not name:
                name = value.strip()
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"model": name or "unknown CPU", "flags": {flag: flag in flags for flag in wanted}}


def measure_peak(seconds: float = PEAK_SECONDS_PER_CASE, device: str = "cpu") -> dict[str, Any]:
    """Best GFLOP/s of a few torch matmuls per dtype (square matmul and a BERT-shaped linear layer).

    ``reference`` names the dtype rerankd computes in with ``dtype: auto`` on this device (bf16 on a GPU
    or a CPU with native bf16, else fp32): the results are a share of that peak."""
    import torch

    if device.startswith("cuda"):
        return _measure_cuda_peak(device, seconds)

    def best_gflops(run: Callable[[], Any], flops: float) -> float:
        run()  # first call: allocation, kernel selection
        best, spent, reps = math.inf, 0.0, 0
        while reps < 3 or (spent < seconds and reps < 50):
            began = time.perf_counter()
            run()
            took = time.perf_counter() - began
            best, spent, reps = min(best, took), spent + took, reps + 1
        return flops / best / 1e9

    torch.manual_seed(0)
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    result["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    # bf16 runs 10-100x slower on a CPU without native bf16, so its shapes are smaller.
    shapes = {torch.float32: (2048, 4096), torch.bfloat16: (512, 1024)}
    with torch.inference_mode():
        for dtype, (square, rows) in shapes.items():
            a, b = torch.randn(square, square, dtype=dtype), torch.randn(square, square, dtype=dtype)
            x, w = torch.randn(rows, 768, dtype=dtype), torch.randn(3072, 768, dtype=dtype)
            cases = {
                f"matmul {square}x{square}x{square}": best_gflops(
                    functools.partial(torch.matmul, a, b), 2.0 * square**3
                ),
                f"linear {rows}x768 -> 3072": best_gflops(
                    functools.partial(torch.nn.functional.linear, x, w), 2.0 * rows * 768 * 3072
                ),
            }
            key = "fp32" if dtype == torch.float32 else "bf16"
            result[key] = {"gflops": max(cases.values()), "cases": cases}
    flags = cpu_description()["flags"]
    result["reference"] = "bf16" if flags.get("avx512_bf16") or flags.get("amx_bf16") else "fp32"
    return result


def _measure_cuda_peak(device: str, seconds: float) -> dict[str, Any]:
    """The same on a GPU: large square matmuls per dtype, timed with CUDA events after warm-up."""
    import torch

    target = torch.device(device)
    result: dict[str, Any] = {"threads": None, "torch": torch.__version__, "device": device}
    result["cpu_capability"] = torch.cuda.get_device_name(target)
    size = 8192
    with torch.inference_mode():
        for key, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            a = torch.randn(size, size, dtype=dtype, device=target)
            b = torch.randn(size, size, dtype=dtype, device=target)
            torch.matmul(a, b)
            torch.cuda.synchronize(target)
            best, spent, reps = math.inf, 0.0, 0
            while reps < 5 or (spent < seconds and reps < 100):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                torch.matmul(a, b)
                end.record()
                torch.cuda.synchronize(target)
                took = start.elapsed_time(end) / 1000
                best, spent, reps = min(best, took), spent + took, reps + 1
            gflops = 2.0 * size**3 / best / 1e9
            result[key] = {"gflops": gflops, "cases": {f"matmul {size}x{size}x{size}": gflops}}
    result["reference"] = "bf16"
    return result


def reference_peak(peak: dict[str, Any]) -> tuple[str, float | None]:
    """The dtype whose peak results are a share of, and that peak in GFLOP/s."""
    reference = peak.get("reference", "fp32")
    return reference, peak.get(reference, {}).get("gflops")
