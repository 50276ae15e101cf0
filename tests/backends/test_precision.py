"""Precision choices: auto picks what the hardware runs natively; bf16 and int8 keep the ranking.

The CPU's flags are overridden here, so both meanings of ``auto`` (bf16 with AMX or AVX512-BF16, fp32
without) are tested on every machine; bf16 itself is emulated where the CPU lacks it, only slower.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scipy.stats import spearmanr

from rerankd.backends import torch_runtime
from rerankd.backends.bi_encoder import BiEncoderBackend
from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.backends.specs import TransformerSpec
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


CPUS = {
    "amx": (frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"}), "bf16"),
    "avx512-bf16": (frozenset({"avx2", "avx512f", "avx512_bf16"}), "bf16"),
    "avx512-without-bf16": (frozenset({"avx2", "avx512f"}), "fp32"),
    "flags-unreadable": (frozenset(), "fp32"),
}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def pretend_cpu(monkeypatch: pytest.MonkeyPatch, flags: frozenset[str]) -> None:
    """Stand in for the CPU's feature flags (the real ones are read once, cached)."""
    monkeypatch.setattr(torch_runtime, "cpu_flags", lambda: flags)


@pytest.mark.parametrize("cpu_name", CPUS)
def test_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch, cpu_name: str) -> None:
    flags, chosen = CPUS[cpu_name]
    pretend_cpu(monkeypatch, flags)
    cpu = torch.device("cpu")
    assert torch_runtime.native_bf16(cpu) == (chosen == "bf16")
    assert torch_runtime.resolve_dtype("auto", cpu) == DTYPES[chosen]
    assert torch_runtime.precision_label("auto", cpu) == f"{chosen} (auto)"
    # Asked for by name, a precision does not depend on the hardware.
    for name, dtype in DTYPES.items():
        assert torch_runtime.resolve_dtype(name, cpu) == dtype
        assert torch_runtime.precision_label(name, cpu) == name
    assert torch_runtime.resolve_dtype("int8", cpu) == torch.float32
    with pytest.raises(RuntimeError, match="fp16 is not supported on CPU"):
        torch_runtime.resolve_dtype("fp16", cpu)


BACKENDS: dict[str, type[CrossEncoderBackend] | type[BiEncoderBackend]] = {
    "cross-encoder": CrossEncoderBackend,
    "bi-encoder": BiEncoderBackend,
}


def load(path: Path, dtype: str, kind: str = "cross-encoder") -> CrossEncoderBackend | BiEncoderBackend:
    fields = {"kind": kind, "source": str(path), "device": "cpu", "dtype": dtype, "max_length": 64}
    spec = TransformerSpec.model_validate({"name": "m", **fields})
    return BACKENDS[kind].load(spec)


def scores_of(backend: CrossEncoderBackend | BiEncoderBackend) -> list[float]:
    prepared = backend.prepare(QUERY, DOCUMENTS, ScoreOptions())
    return prepared.combine(backend.forward(prepared.inputs))


def scores(path: Path, dtype: str) -> list[float]:
    return scores_of(load(path, dtype))


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("cpu_name", ["amx", "avx512-without-bf16"])
def test_auto_loads_and_scores_in_what_it_chose(
    monkeypatch: pytest.MonkeyPatch, cpu_name: str, kind: str, request: pytest.FixtureRequest
) -> None:
    # Without native bf16, auto is fp32 (and so matches sentence-transformers, see test_*_encoder.py);
    # with it, auto is bf16. Either way it computes exactly what naming that precision computes.
    flags, chosen = CPUS[cpu_name]
    pretend_cpu(monkeypatch, flags)
    path = request.getfixturevalue("tiny_bert" if kind == "cross-encoder" else "tiny_bi_encoder")
    auto, named = load(path, "auto", kind), load(path, chosen, kind)
    assert auto.precision == f"{chosen} (auto)" and named.precision == chosen
    assert {p.dtype for p in auto.model.parameters()} == {DTYPES[chosen]}
    assert scores_of(auto) == pytest.approx(scores_of(named), abs=1e-6)


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
