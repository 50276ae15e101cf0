"""Export a cross-encoder folder to ONNX for Infinity's ``optimum`` engine, offline.

Infinity's optimum engine only loads a folder that already holds an ``*.onnx`` file. ``optimum-cli
export onnx`` does not work in the pinned Infinity environment (optimum 1.24 cannot clean up after
torch 2.13's exporter), so this script exports with torch's TorchScript-based exporter directly:
inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (batch and sequence dynamic), output
``logits`` — the names ``optimum.onnxruntime.ORTModelForSequenceClassification`` expects.

It runs with the Infinity environment's interpreter (:func:`rerankd_support.bench.infinity.ensure_onnx`
calls it by its path), not rerankd's, so it imports nothing from this package::

    .cache/bench-venvs/infinity/bin/python support/rerankd_support/bench/infinity_onnx.py SRC_DIR DST_DIR

DST_DIR receives ``model.onnx`` plus the config and tokenizer files of SRC_DIR, so Infinity loads the
same weights and tokenizer as the other servers. It is written beside DST_DIR and renamed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

COPIED = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17


def export(source: Path, target: Path) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification

    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(source)).eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    axes: dict[str, dict[int, str]] = {name: {0: "batch_size", 1: "sequence_length"} for name in INPUTS}
    axes["logits"] = {0: "batch_size"}
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(staging / "model.onnx"),
            input_names=list(INPUTS),
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    for name in COPIED:
        if (source / name).is_file():
            shutil.copy2(source / name, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a cross-encoder folder to ONNX for Infinity.")
    parser.add_argument("source", type=Path, help="folder of a BertForSequenceClassification model")
    parser.add_argument("target", type=Path, help="folder to write (replaced)")
    args = parser.parse_args(argv)
    print(f"exported {export(args.source, args.target) / 'model.onnx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
