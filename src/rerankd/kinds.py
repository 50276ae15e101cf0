"""Every kind of model rerankd serves, in one table: its settings and where its implementation lives.

| kind          | settings                       | implementation (imported on first load)      |
|---------------|--------------------------------|----------------------------------------------|
| cross-encoder | backends.specs.TransformerSpec | backends/cross_encoder.py                    |
| bi-encoder    | backends.specs.TransformerSpec | backends/bi_encoder.py                       |
| llm-reranker  | backends.specs.LlmRerankerSpec | backends/llm_reranker.py                     |
| bm25          | backends.specs.Bm25Spec        | backends/bm25.py                             |
| upstream      | upstream.spec.UpstreamSpec     | upstream/base.py (another rerank API)        |
| hybrid        | backends.specs.HybridSpec      | backends/hybrid.py (fuses configured models) |

A new kind is one implementation module plus one line in ``KINDS`` (and a settings class, if it takes
settings no existing kind has). The config accepts exactly these kinds, each with its own settings;
implementations load lazily, so a server that serves only bm25 never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from rerankd.backends.specs import Bm25Spec, HybridSpec, LlmRerankerSpec, TransformerSpec
from rerankd.spec import ModelSpec
from rerankd.types import Scorer
from rerankd.upstream.spec import UpstreamSpec

__all__ = ["KINDS", "ModelKind", "Resolve", "kind_of", "load_model", "model_spec"]

Resolve = Callable[[str], Awaitable[Scorer]]  # a configured model's ready scorer, by name


@dataclass(frozen=True, slots=True)
class ModelKind:
    """One kind of model: its settings class, and its implementation as ``module:Class``.

    ``Class.load(spec)`` builds the model: a batched or direct backend (``rerankd.backends.base``),
    slow for models with weights (call it off the event loop); or, for a ``remote`` kind, a scorer
    (``rerankd.types.Scorer``) that calls out, with nothing to load, warm up or batch.
    """

    spec: type[ModelSpec]
    implementation: str
    remote: bool = False
    composite: bool = False  # scores through other configured models: ``load(spec, resolve)``

    def load(self, spec: ModelSpec, resolve: Resolve | None = None) -> Any:
        module, _, name = self.implementation.partition(":")
        implementation = getattr(importlib.import_module(module), name)
        if self.composite:
            if resolve is None:
                raise ValueError(f"model {spec.name!r} ({spec.kind}) needs the other configured models")
            return implementation.load(spec, resolve)
        return implementation.load(spec)


KINDS: dict[str, ModelKind] = {
    "cross-encoder": ModelKind(TransformerSpec, "rerankd.backends.cross_encoder:CrossEncoderBackend"),
    "bi-encoder": ModelKind(TransformerSpec, "rerankd.backends.bi_encoder:BiEncoderBackend"),
    "llm-reranker": ModelKind(LlmRerankerSpec, "rerankd.backends.llm_reranker:LlmRerankerBackend"),
    "bm25": ModelKind(Bm25Spec, "rerankd.backends.bm25:Bm25Backend"),
    "upstream": ModelKind(UpstreamSpec, "rerankd.upstream.base:UpstreamScorer", remote=True),
    "hybrid": ModelKind(HybridSpec, "rerankd.serving.hybrid:HybridScorer", remote=True, composite=True),
}


def kind_of(spec: ModelSpec) -> ModelKind:
    kind = KINDS.get(spec.kind)
    if kind is None or not isinstance(spec, kind.spec):
        raise ValueError(
            f"model {spec.name!r}: settings of type {type(spec).__name__} for kind {spec.kind!r}"
        )
    return kind


def load_model(spec: ModelSpec) -> Any:
    """Build the model a spec describes (see :class:`ModelKind`)."""
    return kind_of(spec).load(spec)


def model_spec(entry: Mapping[str, Any] | ModelSpec) -> ModelSpec:
    """Validate one ``models:`` entry with the settings class of its kind.

    Raises ValueError naming the entry, and the key, the kind or the value that is wrong.
    """
    if isinstance(entry, ModelSpec):
        kind_of(entry)
        return entry
    if not isinstance(entry, Mapping):
        raise ValueError(f"a model entry must be a mapping of settings, not {type(entry).__name__}")
    name = entry.get("name", "?")
    kind = entry.get("kind")
    if kind is None:
        raise ValueError(f"model {name!r} needs a `kind`: one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise ValueError(f"model {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    try:
        return KINDS[kind].spec.model_validate(dict(entry))
    except ValidationError as exc:
        raise ValueError(f"model {name!r} (kind {kind}): {_problems(exc, kind)}") from None


def _problems(exc: ValidationError, kind: str) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown setting `{where}` for kind {kind}")
        elif err["type"] == "missing":
            problems.append(f"needs a `{where}`")
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
