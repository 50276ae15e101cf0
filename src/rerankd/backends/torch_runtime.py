"""Torch details shared by the transformer backends: device and precision choice, and padding a batch."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rerankd.backends.base import Encoded

__all__ = [
    "AUTO_ON_NATIVE_BF16_CPU",
    "autocast_dtype",
    "compute_context",
    "cpu_flags",
    "default_batch_tokens",
    "finish_model",
    "native_bf16",
    "pad_batch",
    "precision_label",
    "resolve_device",
    "resolve_dtype",
    "resolve_precision",
]

# Weights' dtype per precision. bf16-autocast keeps fp32 weights and computes the matmuls in bf16 under
# torch.autocast; int8 loads fp32 weights, quantized afterwards by finish_model.
_WEIGHTS = {
    "fp32": torch.float32,
    "bf16-autocast": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "int8": torch.float32,
}
_AUTOCAST = {"bf16-autocast": torch.bfloat16}
_LABELS = {"bf16-autocast": "bf16 autocast"}
_NATIVE_BF16_FLAGS = {"amx_bf16", "avx512_bf16"}

# What ``auto`` computes in on a CPU with native bf16. benchmarks/bench_precision.py --fidelity on an AMX
# Xeon (real all-MiniLM-L6-v2 reranking BM25's top 100 for all 225 Cranfield queries; README): autocast
# is the closest to fp32 (NDCG@10 -0.0001, max |Δ| 2.7e-3, top-10 agreement 0.996); bf16 weights were
# within 0.001 there too (+0.0001, max |Δ| 4.6e-3, 0.993) and faster on that small model, but lost 0.0027
# in the run of the same model, and on BERT-base autocast is as fast as bf16 weights (2.5x fp32).
# int8 loses 0.019.
AUTO_ON_NATIVE_BF16_CPU = "bf16-autocast"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but torch sees no CUDA device")
    return device


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def default_batch_tokens(device: torch.device) -> int:
    """Padded tokens per forward pass unless configured. On a CPU a pass of a few thousand tokens is
    already as efficient per token as any (benchmarks/bench_packing.py: 4096 beat 8192 by 6-12%), on a
    GPU larger passes keep it busy."""
    return 4096 if device.type == "cpu" else 16384


def native_bf16(device: torch.device) -> bool:
    """bf16 runs in hardware here: a CUDA device that supports it, or a CPU with AMX or AVX512-BF16.
    Elsewhere torch emulates bf16 on CPUs, several times slower than fp32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(_NATIVE_BF16_FLAGS & cpu_flags())


def resolve_precision(name: str, device: torch.device) -> str:
    """What a configured ``dtype`` computes in on this device: ``fp32``, ``bf16-autocast``, ``bf16``,
    ``fp16`` or ``int8``. ``auto``: on a CPU with native bf16, bf16 matmuls under autocast with fp32
    weights (:data:`AUTO_ON_NATIVE_BF16_CPU`), fp32 on other CPUs; on CUDA, bf16 weights where supported,
    else fp16. Refuses what the device cannot run."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if native_bf16(device) else "fp16"
        return AUTO_ON_NATIVE_BF16_CPU if native_bf16(device) else "fp32"
    if name not in _WEIGHTS:
        raise ValueError(f"unknown precision {name!r}; one of auto, {', '.join(_WEIGHTS)}")
    if name == "fp16" and device.type == "cpu":
        raise RuntimeError("fp16 is not supported on CPU; use bf16-autocast, bf16, int8 or fp32")
    if name == "int8" and device.type != "cpu":
        raise RuntimeError("int8 (dynamic quantization) runs on CPU only; use bf16 or fp16 on CUDA")
    return name


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype to load weights in: fp32 for ``fp32``, ``bf16-autocast`` and ``int8`` (quantized
    afterwards by :func:`finish_model`), else the named half precision."""
    return _WEIGHTS[resolve_precision(name, device)]


def autocast_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The dtype the forward pass autocasts to, or None where it runs in the weights' dtype."""
    return _AUTOCAST.get(resolve_precision(name, device))


def compute_context(
    autocast: torch.dtype | None, device: torch.device
) -> contextlib.AbstractContextManager[Any]:
    """Around a forward pass: ``torch.autocast`` to ``autocast`` (matmuls and attention in bf16; what
    autocast leaves alone, such as layer norms, softmax and the residual stream, stays fp32), or nothing."""
    if autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=autocast)


def finish_model(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """``int8``: quantize the Linear layers' weights in place, dynamically (activations per batch)."""
    if name != "int8":
        return model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        quantized: torch.nn.Module = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )
    return quantized


def precision_label(name: str, device: torch.device) -> str:
    """What a model actually computes in, for /v1/models: e.g. ``fp32``, ``bf16 autocast (auto)``."""
    precision = resolve_precision(name, device)
    label = _LABELS.get(precision, precision)
    return f"{label} (auto)" if name == "auto" else label


def pad_batch(
    inputs: Sequence[Encoded], pad_id: int, device: torch.device, *, side: Literal["right", "left"] = "right"
) -> dict[str, torch.Tensor]:
    """Pad token ids into tensors (on the right, or on the left so every row ends at the last column);
    the attention mask hides the padding."""
    rows, width = len(inputs), max(len(item) for item in inputs)
    ids = np.full((rows, width), pad_id, dtype=np.int64)
    mask = np.zeros((rows, width), dtype=np.int64)
    with_types = inputs[0].token_type_ids is not None
    types = np.zeros((rows, width), dtype=np.int64) if with_types else None
    for row, item in enumerate(inputs):
        n = len(item)
        cols = slice(0, n) if side == "right" else slice(width - n, width)
        ids[row, cols] = item.input_ids
        mask[row, cols] = 1
        if types is not None and item.token_type_ids is not None:
            types[row, cols] = item.token_type_ids
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if types is not None:
        batch["token_type_ids"] = torch.from_numpy(types)
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
