"""ONNX Runtime for cross-encoders on CPU (``runtime: onnx``).

The loaded transformers model is exported once, at load, with torch's TorchScript-based exporter (batch
and sequence dynamic) into a temporary file that ONNX Runtime reads with its graph optimisations on
(attention, GELU and layer-norm fusions); then the file is deleted and the torch weights can go. Inputs
are the same padded arrays the torch path builds, so scores match it to float rounding.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["OnnxForward"]

_OPSET = 17
_MISSING = "runtime onnx needs onnxruntime and onnx: pip install 'rerankd[onnx]'"


class OnnxForward:
    """Runs an exported sequence-classification model: padded input arrays in, logits out."""

    def __init__(self, model: torch.nn.Module, input_names: list[str]) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ImportError(_MISSING) from exc
        self.input_names = input_names
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()  # the cores torch would use
        options.inter_op_num_threads = 1
        with tempfile.TemporaryDirectory(prefix="rerankd-onnx-") as folder:
            path = Path(folder) / "model.onnx"
            _export(model, input_names, path)
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {name: batch[name].numpy() for name in self.input_names}
        logits = self.session.run(["logits"], feed)[0]
        return torch.from_numpy(np.asarray(logits, dtype=np.float32))


def _export(model: torch.nn.Module, input_names: list[str], path: Path) -> None:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    example = torch.ones(2, 16, dtype=torch.long)
    axes: dict[str, Any] = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes["logits"] = {0: "batch"}
    # The tracer warns about every shape-dependent Python branch of the model; the axes stay dynamic.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(example if name != "token_type_ids" else torch.zeros_like(example) for name in input_names),
            str(path),
            input_names=input_names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )
