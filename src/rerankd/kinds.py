"""Every kind of model rerankd serves, in one table: its settings, its shape, and how it loads.

| kind             | settings                  | shape     | implementation (imported on first load)     |
|------------------|---------------------------|-----------|---------------------------------------------|
| cross-encoder    | specs.TransformerSpec     | local     | backends/cross_encoder.py                   |
| bi-encoder       | specs.TransformerSpec     | local     | backends/bi_encoder.py                      |
| llm-reranker     | specs.LlmRerankerSpec     | local     | backends/llm_reranker.py                    |
| listwise         | specs.ListwiseSpec        | local     | backends/listwise.py (jina-reranker-v3)     |
| late-interaction | specs.LateInteractionSpec | local     | backends/late_interaction.py (ColBERT)      |
| bm25             | specs.Bm25Spec            | local     | backends/bm25.py                            |
| upstream         | upstream.UpstreamSpec     | remote    | upstream/base.py (another rerank API)       |
| hybrid           | specs.HybridSpec          | composite | serving/hybrid.py (fuses configured models) |
| cascade          | specs.CascadeSpec         | composite | serving/cascade.py (models in turn, top k)  |

``specs`` is backends/specs.py; ``upstream.UpstreamSpec`` is in upstream/spec.py.

A kind's *shape* says how the pool serves it: ``local`` builds a backend in this process that the
scheduler batches or runs whole; ``remote`` builds a scorer that calls out (nothing to load, warm up or
batch); ``composite`` builds a scorer that scores through other configured models.

A new kind is one implementation module plus, here, a loader (a few lines that import it) and one line
in ``KINDS`` (and a settings class, if it takes settings no existing kind has). Each loader declares its
settings class, so mypy checks that the pair fits and that the implementation keeps the contract of its
shape. The config accepts exactly these kinds; implementations load on first use, so a server that
serves only bm25 never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import ValidationError

from rerankd.backends.base import BatchedBackend, DirectBackend
from rerankd.backends.specs import (
    Bm25Spec,
    CascadeSpec,
    HybridSpec,
    LateInteractionSpec,
    ListwiseSpec,
    LlmRerankerSpec,
    TransformerSpec,
)
from rerankd.errors import settings_problems
from rerankd.spec import ModelSpec
from rerankd.types import Scorer
from rerankd.upstream.spec import UpstreamSpec

if TYPE_CHECKING:  # for the checker only: serving is a floor above this table (see _hybrid)
    from rerankd.serving.cascade import CascadeScorer
    from rerankd.serving.hybrid import HybridScorer

__all__ = [
    "KINDS",
    "CompositeKind",
    "LocalKind",
    "ModelKind",
    "RemoteKind",
    "Resolve",
    "Shape",
    "kind_of",
    "load_model",
    "model_spec",
]

Resolve = Callable[[str], Awaitable[Scorer]]  # a configured model's ready scorer, by name
Shape = Literal["local", "remote", "composite"]
Backend = BatchedBackend | DirectBackend

S = TypeVar("S", bound=ModelSpec)


@dataclass(frozen=True, slots=True)
class LocalKind(Generic[S]):
    """A model in this process: ``load`` builds a backend the scheduler batches (:class:`BatchedBackend`)
    or runs whole (:class:`DirectBackend`). Slow for models with weights: call it off the event loop."""

    spec: type[S]
    load: Callable[[S], Backend]
    shape: ClassVar[Literal["local"]] = "local"


@dataclass(frozen=True, slots=True)
class RemoteKind(Generic[S]):
    """A model served elsewhere: ``load`` builds a scorer that calls out; it connects on first use."""

    spec: type[S]
    load: Callable[[S], Scorer]
    shape: ClassVar[Literal["remote"]] = "remote"


@dataclass(frozen=True, slots=True)
class CompositeKind(Generic[S]):
    """A model that scores through other configured models, which ``load`` gets as ``resolve``."""

    spec: type[S]
    load: Callable[[S, Resolve], Scorer]
    shape: ClassVar[Literal["composite"]] = "composite"


ModelKind = LocalKind[Any] | RemoteKind[Any] | CompositeKind[Any]


# The loaders are declared by decorators rather than inside the table: a record built in the table would
# take its settings class from the table's type (Any), and mypy would no longer check the pair.
def local(spec: type[S]) -> Callable[[Callable[[S], Backend]], LocalKind[S]]:
    return lambda load: LocalKind(spec, load)


def remote(spec: type[S]) -> Callable[[Callable[[S], Scorer]], RemoteKind[S]]:
    return lambda load: RemoteKind(spec, load)


def composite(spec: type[S]) -> Callable[[Callable[[S, Resolve], Scorer]], CompositeKind[S]]:
    return lambda load: CompositeKind(spec, load)


@local(TransformerSpec)
def _cross_encoder(spec: TransformerSpec) -> BatchedBackend:
    from rerankd.backends.cross_encoder import CrossEncoderBackend

    return CrossEncoderBackend.load(spec)


@local(TransformerSpec)
def _bi_encoder(spec: TransformerSpec) -> BatchedBackend:
    from rerankd.backends.bi_encoder import BiEncoderBackend

    return BiEncoderBackend.load(spec)


@local(LlmRerankerSpec)
def _llm_reranker(spec: LlmRerankerSpec) -> BatchedBackend:
    from rerankd.backends.llm_reranker import LlmRerankerBackend

    return LlmRerankerBackend.load(spec)


@local(ListwiseSpec)
def _listwise(spec: ListwiseSpec) -> DirectBackend:
    from rerankd.backends.listwise import ListwiseBackend

    return ListwiseBackend.load(spec)


@local(LateInteractionSpec)
def _late_interaction(spec: LateInteractionSpec) -> BatchedBackend:
    from rerankd.backends.late_interaction import LateInteractionBackend

    return LateInteractionBackend.load(spec)


@local(Bm25Spec)
def _bm25(spec: Bm25Spec) -> DirectBackend:
    from rerankd.backends.bm25 import Bm25Backend

    return Bm25Backend.load(spec)


@remote(UpstreamSpec)
def _upstream(spec: UpstreamSpec) -> Scorer:
    from rerankd.upstream.base import UpstreamScorer

    return UpstreamScorer.load(spec)


@composite(HybridSpec)
def _hybrid(spec: HybridSpec, resolve: Resolve) -> Scorer:
    # A hybrid scores through the pool, so it lives beside it on the serving floor, above this table:
    # imported by name at its first load, not by an import statement that would point up a floor.
    hybrid: type[HybridScorer] = importlib.import_module("rerankd.serving.hybrid").HybridScorer
    return hybrid.load(spec, resolve)


@composite(CascadeSpec)
def _cascade(spec: CascadeSpec, resolve: Resolve) -> Scorer:
    # On the serving floor too, for the same reason as _hybrid.
    cascade: type[CascadeScorer] = importlib.import_module("rerankd.serving.cascade").CascadeScorer
    return cascade.load(spec, resolve)


KINDS: dict[str, ModelKind] = {
    "cross-encoder": _cross_encoder,
    "bi-encoder": _bi_encoder,
    "llm-reranker": _llm_reranker,
    "listwise": _listwise,
    "late-interaction": _late_interaction,
    "bm25": _bm25,
    "upstream": _upstream,
    "hybrid": _hybrid,
    "cascade": _cascade,
}


def kind_of(spec: ModelSpec) -> ModelKind:
    kind = KINDS.get(spec.kind)
    if kind is None or not isinstance(spec, kind.spec):
        raise ValueError(
            f"model {spec.name!r}: settings of type {type(spec).__name__} for kind {spec.kind!r}"
        )
    return kind


def load_model(spec: ModelSpec) -> Any:
    """Build the backend (or, for a remote kind, the scorer) a spec describes, for scripts and tests that
    know which one they asked for; the server loads through its pool."""
    kind = kind_of(spec)
    if kind.shape == "composite":
        raise ValueError(f"model {spec.name!r} ({spec.kind}) needs the other configured models")
    return kind.load(spec)


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
        spec: ModelSpec = KINDS[kind].spec.model_validate(dict(entry))
        return spec
    except ValidationError as exc:
        raise ValueError(f"model {name!r} (kind {kind}): {settings_problems(exc, kind)}") from None
