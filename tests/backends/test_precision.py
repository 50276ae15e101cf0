"""Precision choices: auto picks what the hardware runs natively; reduced precisions keep the ranking.

The CPU's flags are overridden here, so both meanings of ``auto`` on a CPU (bf16 autocast over fp32 weights
with AMX or AVX512-BF16, fp32 without) are tested on every machine; bf16 itself is emulated where the CPU
lacks it, only slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from scipy.stats import spearmanr

from rerankd.backends import torch_runtime
from rerankd.backends.bi_encoder import BiEncoderBackend
from rerankd.backends.cross_encoder import CrossEncoderBackend
from rerankd.backends.llm_reranker import LlmRerankerBackend
from rerankd.backends.specs import LlmRerankerSpec, TransformerSpec
from rerankd.kinds import load_model
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
    "amx": (frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"}), "bf16-autocast"),
    "avx512-bf16": (frozenset({"avx2", "avx512f", "avx512_bf16"}), "bf16-autocast"),
    "avx512-without-bf16": (frozenset({"avx2", "avx512f"}), "fp32"),
    "avx2-only": (frozenset({"sse4_2", "avx", "avx2", "fma"}), "fp32"),
    "flags-unreadable": (frozenset(), "fp32"),
}
# Asked for by name on a CPU: (weights' dtype, autocast dtype, label).
NAMED = {
    "fp32": (torch.float32, None, "fp32"),
    "bf16-autocast": (torch.float32, torch.bfloat16, "bf16 autocast"),
    "bf16": (torch.bfloat16, None, "bf16"),
    "int8": (torch.float32, None, "int8"),
}
LABELS = {"bf16-autocast": "bf16 autocast", "fp32": "fp32"}


def pretend_cpu(monkeypatch: pytest.MonkeyPatch, flags: frozenset[str]) -> None:
    """Stand in for the CPU's feature flags (the real ones are read once, cached)."""
    monkeypatch.setattr(torch_runtime, "cpu_flags", lambda: flags)


@pytest.mark.parametrize("cpu_name", CPUS)
def test_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch, cpu_name: str) -> None:
    flags, chosen = CPUS[cpu_name]
    pretend_cpu(monkeypatch, flags)
    cpu = torch.device("cpu")
    assert torch_runtime.native_bf16(cpu) == (chosen == "bf16-autocast")
    assert torch_runtime.resolve_precision("auto", cpu) == chosen
    # Either way the weights stay fp32: with native bf16, autocast computes the matmuls in bf16.
    assert torch_runtime.resolve_dtype("auto", cpu) == torch.float32
    assert torch_runtime.autocast_dtype("auto", cpu) == NAMED[chosen][1]
    assert torch_runtime.precision_label("auto", cpu) == f"{LABELS[chosen]} (auto)"
    # Asked for by name, a precision does not depend on the hardware.
    for name, (weights, autocast, label) in NAMED.items():
        assert torch_runtime.resolve_precision(name, cpu) == name
        assert torch_runtime.resolve_dtype(name, cpu) == weights
        assert torch_runtime.autocast_dtype(name, cpu) == autocast
        assert torch_runtime.precision_label(name, cpu) == label
    with pytest.raises(RuntimeError, match="fp16 is not supported on CPU"):
        torch_runtime.resolve_dtype("fp16", cpu)
    with pytest.raises(ValueError, match="unknown precision"):
        torch_runtime.resolve_precision("bf8", cpu)


@pytest.mark.parametrize(("bf16_supported", "chosen"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda_casts_the_weights(
    monkeypatch: pytest.MonkeyPatch, bf16_supported: bool, chosen: str
) -> None:
    # Nothing runs on the device: only the choice, which reads torch.cuda.is_bf16_supported().
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    cuda = torch.device("cuda")
    assert torch_runtime.resolve_precision("auto", cuda) == chosen
    assert (
        torch_runtime.resolve_dtype("auto", cuda) == {"bf16": torch.bfloat16, "fp16": torch.float16}[chosen]
    )
    assert torch_runtime.autocast_dtype("auto", cuda) is None
    assert torch_runtime.precision_label("auto", cuda) == f"{chosen} (auto)"
    assert torch_runtime.autocast_dtype("bf16-autocast", cuda) == torch.bfloat16
    with pytest.raises(RuntimeError, match="int8"):
        torch_runtime.resolve_dtype("int8", cuda)


Backend = CrossEncoderBackend | BiEncoderBackend | LlmRerankerBackend
KINDS: dict[str, tuple[str, type[TransformerSpec]]] = {
    "cross-encoder": ("tiny_bert", TransformerSpec),
    "bi-encoder": ("tiny_bi_encoder", TransformerSpec),
    "llm-reranker": ("tiny_qwen3_reranker", LlmRerankerSpec),
}


def load(path: Path, dtype: str, kind: str = "cross-encoder") -> Backend:
    fields = {"kind": kind, "source": str(path), "device": "cpu", "dtype": dtype, "max_length": 64}
    if kind == "llm-reranker":
        fields["max_length"] = 256  # the prompt itself takes ~60 tokens
    spec = KINDS[kind][1].model_validate({"name": "m", **fields})
    backend: Backend = load_model(spec)
    return backend


def scores_of(backend: Backend) -> list[float]:
    prepared = backend.prepare(QUERY, DOCUMENTS, ScoreOptions())
    outputs: list[Any] = backend.forward(prepared.inputs)
    return prepared.combine(outputs)


def scores(path: Path, dtype: str) -> list[float]:
    return scores_of(load(path, dtype))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cpu_name", ["amx", "avx2-only"])
def test_auto_loads_and_scores_in_what_it_chose(
    monkeypatch: pytest.MonkeyPatch, cpu_name: str, kind: str, request: pytest.FixtureRequest
) -> None:
    # Without native bf16, auto is fp32 (and so matches sentence-transformers, see test_*_encoder.py);
    # with it, auto is bf16 autocast over fp32 weights. Either way it computes exactly what naming that
    # precision computes. (bf16 is emulated where the CPU lacks it: slower, same rounding.)
    flags, chosen = CPUS[cpu_name]
    pretend_cpu(monkeypatch, flags)
    path = request.getfixturevalue(KINDS[kind][0])
    auto, named = load(path, "auto", kind), load(path, chosen, kind)
    assert auto.precision == f"{LABELS[chosen]} (auto)" and named.precision == LABELS[chosen]
    assert {p.dtype for p in auto.model.parameters()} == {torch.float32}
    assert auto.autocast == NAMED[chosen][1]
    assert scores_of(auto) == scores_of(named)
    if chosen == "bf16-autocast":
        fp32 = scores_of(load(path, "fp32", kind))
        assert scores_of(auto) != pytest.approx(fp32, abs=1e-6)  # it did compute in bf16


@pytest.mark.parametrize("kind", KINDS)
def test_autocast_computes_matmuls_in_bf16_and_norms_in_fp32(
    kind: str, request: pytest.FixtureRequest
) -> None:
    backend = load(request.getfixturevalue(KINDS[kind][0]), "bf16-autocast", kind)
    seen: dict[str, set[torch.dtype]] = {"linear": set(), "norm": set()}

    def record(module: torch.nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            seen["linear" if isinstance(module, torch.nn.Linear) else "norm"].add(output.dtype)

    for module in backend.model.modules():
        if isinstance(module, torch.nn.Linear) or "Norm" in type(module).__name__:
            module.register_forward_hook(record)
    scores_of(backend)
    assert seen["linear"] == {torch.bfloat16}
    assert seen["norm"] == {torch.float32}
    # Outside a forward pass nothing is left autocasting.
    assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("dtype", ["bf16-autocast", "bf16", "int8"])
def test_reduced_precision_keeps_the_ranking(tiny_bert: Path, dtype: str) -> None:
    # A generated model whose scores spread (a std-0.02 random init scores every document alike, and
    # then any rounding reorders them); the benchmark measures fidelity on real architectures.
    reference, reduced = scores(tiny_bert, "fp32"), scores(tiny_bert, dtype)
    rho = spearmanr(reference, reduced).statistic
    top = sorted(range(len(DOCUMENTS)), key=lambda i: -reference[i])[:3]
    top_reduced = sorted(range(len(DOCUMENTS)), key=lambda i: -reduced[i])[:3]
    assert rho > 0.9, (reference, reduced)
    assert len(set(top) & set(top_reduced)) >= 2
