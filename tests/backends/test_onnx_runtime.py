"""runtime: onnx — the same cross-encoder exported at load and run by ONNX Runtime scores as torch does."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.config import ModelSpec

from .test_cross_encoder import DOCUMENTS, QUERY, load, score_batched

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_bert_two_labels", "tiny_xlmr"])
def test_onnx_scores_match_torch(fixture: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    torch_backend, onnx_backend = load(path), load(path, runtime="onnx")
    assert onnx_backend.onnx is not None and onnx_backend.model is None
    assert onnx_backend.precision.endswith("onnxruntime")
    documents = [*DOCUMENTS, " ".join(["capital"] * 300)]  # mixed lengths: padded batches
    for budget in (64, 10_000):  # one input per pass, and everything in one padded pass
        expected = score_batched(torch_backend, QUERY, documents, budget)
        assert score_batched(onnx_backend, QUERY, documents, budget) == pytest.approx(expected, abs=1e-4)


def test_onnx_runtime_is_for_cpu_cross_encoders_in_fp32() -> None:
    with pytest.raises(ValidationError, match="for cross-encoders"):
        ModelSpec(name="m", kind="bi-encoder", source="x", runtime="onnx")
    with pytest.raises(ValidationError, match="fp32"):
        ModelSpec(name="m", kind="cross-encoder", source="x", runtime="onnx", dtype="bf16")
    with pytest.raises(ValidationError, match="CPU"):
        ModelSpec(name="m", kind="cross-encoder", source="x", runtime="onnx", device="cuda")


def test_missing_onnxruntime_names_the_package(tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ImportError, match=r"pip install 'rerankd\[onnx\]'"):
        CrossEncoderBackend.load(
            ModelSpec(name="m", kind="cross-encoder", source=str(tiny_bert), device="cpu", runtime="onnx")
        )
