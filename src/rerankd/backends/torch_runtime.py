"""Torch details shared by the transformer backends: device and precision choice, and padding a batch."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from rerankd.backends.base import Encoded

__all__ = [
    "cpu_flags",
    "default_batch_tokens",
    "finish_model",
    "native_bf16",
    "pad_batch",
    "precision_label",
    "resolve_device",
    "resolve_dtype",
]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_NATIVE_BF16_FLAGS = {"amx_bf16", "avx512_bf16"}


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


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype to load weights in. ``auto``: bf16 where it is native, else fp16 on CUDA, else fp32.
    ``int8`` loads fp32 weights, quantized afterwards by :func:`finish_model`."""
    if name == "auto":
        if native_bf16(device):
            return torch.bfloat16
        return torch.float16 if device.type == "cuda" else torch.float32
    if name == "fp16" and device.type == "cpu":
        raise RuntimeError("fp16 is not supported on CPU; use bf16, int8 or fp32")
    if name == "int8":
        if device.type != "cpu":
            raise RuntimeError("int8 (dynamic quantization) runs on CPU only; use bf16 or fp16 on CUDA")
        return torch.float32
    return _DTYPES[name]


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
    """What a model actually computes in, for /v1/models: e.g. ``fp32 (auto)``."""
    if name != "auto":
        return name
    chosen = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[
        resolve_dtype(name, device)
    ]
    return f"{chosen} (auto)"


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
