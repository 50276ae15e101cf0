"""Precision choices: auto picks what the hardware runs natively; bf16 and int8 keep the ranking."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scipy.stats import spearmanr

from rerankd.backends import torch_runtime
from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.config import ModelSpec
from rerankd.types import ScoreOptions

QUERY = (
    "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft"
)
DOCUMENTS = [
    f"{topic} of a wing in a supersonic stream at angle of attack {i}"
    for i, topic in enumerate(
        [
            "aeroelastic models",
            "heat transfer",
            "boundary layer",
            "shock waves",
            "flutter",
            "buckling of plates",
            "similarity laws",
            "slender bodies",
            "panel flutter",
            "thermal stresses",
            "viscous flow",
            "jet noise",
        ]
    )
]


def test_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch_runtime, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert torch_runtime.resolve_dtype("auto", cpu) == torch.bfloat16
    assert torch_runtime.precision_label("auto", cpu) == "bf16 (auto)"
    monkeypatch.setattr(torch_runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    assert torch_runtime.resolve_dtype("auto", cpu) == torch.float32
    assert torch_runtime.resolve_dtype("int8", cpu) == torch.float32
    with pytest.raises(RuntimeError, match="fp16 is not supported on CPU"):
        torch_runtime.resolve_dtype("fp16", cpu)


def scores(path: Path, dtype: str) -> list[float]:
    spec = ModelSpec(
        name="m", kind="cross-encoder", source=str(path), device="cpu", dtype=dtype, max_length=64
    )
    backend = CrossEncoderBackend.load(spec)
    prepared = backend.prepare(QUERY, DOCUMENTS, ScoreOptions())
    return prepared.combine(backend.forward(prepared.inputs))


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
def test_reduced_precision_keeps_the_ranking(tiny_bert: Path, dtype: str) -> None:
    # A generated model whose scores spread (a std-0.02 random init scores every document alike, and
    # then any rounding reorders them); the benchmark measures fidelity on real architectures.
    reference, reduced = scores(tiny_bert, "fp32"), scores(tiny_bert, dtype)
    rho = spearmanr(reference, reduced).statistic
    top = sorted(range(len(DOCUMENTS)), key=lambda i: -reference[i])[:3]
    top_reduced = sorted(range(len(DOCUMENTS)), key=lambda i: -reduced[i])[:3]
    assert rho > 0.9, (reference, reduced)
    assert len(set(top) & set(top_reduced)) >= 2
