"""Torch details shared by the transformer backends: device and dtype choice, and padding a batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rerankd.backends.base import Encoded

__all__ = ["pad_batch", "resolve_device", "resolve_dtype"]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but torch sees no CUDA device")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "fp16" and device.type == "cpu":
        raise RuntimeError("fp16 is not supported on CPU; use bf16 or fp32")
    return _DTYPES[name]


def pad_batch(inputs: Sequence[Encoded], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad token ids into tensors; the attention mask hides the padding."""
    rows, width = len(inputs), max(len(item) for item in inputs)
    ids = np.full((rows, width), pad_id, dtype=np.int64)
    mask = np.zeros((rows, width), dtype=np.int64)
    with_types = inputs[0].token_type_ids is not None
    types = np.zeros((rows, width), dtype=np.int64) if with_types else None
    for row, item in enumerate(inputs):
        n = len(item)
        ids[row, :n] = item.input_ids
        mask[row, :n] = 1
        if types is not None and item.token_type_ids is not None:
            types[row, :n] = item.token_type_ids
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if types is not None:
        batch["token_type_ids"] = torch.from_numpy(types)
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
